package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/tenancy"
)

// ImportOptions are Import's options; the zero value is ready to use.
type ImportOptions struct {
	// SchemaVersion is the target database's tenant schema version, as the
	// catalog records it; the caller vouches that the database is not
	// dirty. Zero reads both from the database's schema_migrations, which
	// only the schema owner may.
	SchemaVersion uint
	// Progress, when set, is called after each table was loaded (not yet
	// committed), with its row count.
	Progress func(table string, rows int64)
}

// RestoreOptions are Restore's options; the zero value is ready to use.
type RestoreOptions struct {
	// SchemaVersion is as in ImportOptions.
	SchemaVersion uint
	// Progress is as in ImportOptions.
	Progress func(table string, rows int64)
	// AnyOrganization lets Restore load an archive of another
	// organization (to clone a tenant's data over another's). By default
	// the archive must be of the organization restored
	// (ErrOtherOrganization).
	AnyOrganization bool
	// LockTimeout bounds the wait for the organization's writes in flight
	// (see the package documentation). Default 30 s.
	LockTimeout time.Duration
}

// Import loads the archive in src into the database dst is connected to,
// as the organization orgID, which must have no rows there (ErrNotEmpty).
// dst connects as the schema owner or the application role, and must not
// be in a transaction. Everything happens in one transaction that commits
// only once the whole archive was checked and every table read back
// matches it; on any error nothing was written (see the package
// documentation), and dst may have been closed (a cancelled COPY ends its
// connection). It returns the archive's manifest.
//
// Import does not touch the catalog: the caller creates the organization
// and its placement, and keeps it from serving until Import returned. Nor
// does it load users.json: users live in the catalog, and the caller can
// read them with Open(…).Users().
func Import(ctx context.Context, src io.Reader, dst *pgx.Conn, orgID string, opts ImportOptions) (Manifest, error) {
	org, err := canonicalID(orgID)
	if err != nil {
		return Manifest{}, err
	}
	l := loader{org: org, schemaVersion: opts.SchemaVersion, progress: opts.Progress}
	return l.run(ctx, src, dst)
}

// Restore replaces the organization orgID's rows in the database dst is
// connected to with the archive's, all or nothing: one transaction
// deletes the organization's rows (children first), loads the archive's,
// reads every table back, and commits only if they match. Other
// organizations' rows are not touched. A failure, a cancelled context or
// a killed connection leaves the old rows; running Restore again is safe.
// dst is as for Import.
//
// The caller keeps the tenant's writes away meanwhile (the placement, as
// during a move); Restore itself waits for writes in flight and holds back
// new ones until it ends (see the package documentation).
func Restore(ctx context.Context, src io.Reader, dst *pgx.Conn, orgID string, opts RestoreOptions) (Manifest, error) {
	org, err := canonicalID(orgID)
	if err != nil {
		return Manifest{}, err
	}
	l := loader{org: org, replace: true, anyOrg: opts.AnyOrganization, schemaVersion: opts.SchemaVersion,
		progress: opts.Progress, lockTimeout: opts.LockTimeout}
	if l.lockTimeout <= 0 {
		l.lockTimeout = 30 * time.Second
	}
	return l.run(ctx, src, dst)
}

// loader is one run of Import or Restore.
type loader struct {
	org           string // canonical
	replace       bool   // Restore
	anyOrg        bool
	schemaVersion uint
	progress      func(string, int64)
	lockTimeout   time.Duration
}

func (l loader) run(ctx context.Context, src io.Reader, dst *pgx.Conn) (Manifest, error) {
	rd, err := Open(src)
	if err != nil {
		return Manifest{}, err
	}
	defer rd.Close()
	m := rd.Manifest()
	if l.replace && !l.anyOrg && m.Organization.ID != l.org {
		return m, refuse(ErrOtherOrganization, "it holds organization %s (%s), not %s", m.Organization.Slug, m.Organization.ID, l.org)
	}
	newest, err := newestSchema()
	if err != nil {
		return m, err
	}
	if m.SchemaVersion > newest {
		return m, refuse(ErrNewerSchema, "tenant schema version %d is newer than this tenantgate knows (%d): load it with a newer tenantgate",
			m.SchemaVersion, newest)
	}

	tx, err := dst.Begin(ctx)
	if err != nil {
		return m, fmt.Errorf("archive: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := settings(ctx, tx, l.org, true); err != nil {
		return m, err
	}
	if l.replace {
		if err := l.lock(ctx, tx); err != nil {
			return m, err
		}
	}
	s, err := readSchema(ctx, tx, l.schemaVersion)
	if err != nil {
		return m, err
	}
	if s.dirty {
		return m, fmt.Errorf("archive: the database is dirty at schema version %d: repair it first", s.version)
	}
	if err := s.checkKnown(); err != nil {
		return m, err
	}
	if err := fit(m, s); err != nil {
		return m, err
	}
	fast, err := skipTriggers(ctx, tx)
	if err != nil {
		return m, err
	}
	if l.replace {
		err = l.deleteRows(ctx, tx, s)
	} else {
		err = l.ensureEmpty(ctx, tx, s)
	}
	if err != nil {
		return m, err
	}
	for {
		t, data, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break // the whole archive is checked
		}
		if err != nil {
			return m, err
		}
		if err := l.load(ctx, tx, t, data); err != nil {
			return m, err
		}
		if l.progress != nil {
			l.progress(t.Name, t.Rows)
		}
	}
	if fast {
		if err := l.checkReferences(ctx, tx, m); err != nil {
			return m, err
		}
	}
	if err := l.verify(ctx, tx, s, m); err != nil {
		return m, err
	}
	if err := tx.Commit(ctx); err != nil {
		return m, fmt.Errorf("archive: commit: %w", err)
	}
	return m, nil
}

// fit checks, before anything is written, that the archive's tables can
// be loaded into the database's schema s (see "Schema versions" in the
// package documentation).
func fit(m Manifest, s *dbSchema) error {
	if m.SchemaVersion > s.version {
		return refuse(ErrNewerSchema, "tenant schema version %d is newer than the database's (%d): migrate the database first",
			m.SchemaVersion, s.version)
	}
	last := -1
	for _, t := range m.Tables {
		i := slices.Index(Tables, t.Name)
		if i < 0 {
			return refuse(ErrIncompatible, "table %s is not a tenant table this tenantgate loads", t.Name)
		}
		if i < last {
			return refuse(ErrIncompatible, "table %s comes after a table that depends on it", t.Name)
		}
		last = i
		target := s.tables[t.Name]
		for _, c := range t.Columns {
			col, ok := target.column(c)
			if !ok || col.generated {
				return refuse(ErrIncompatible, "column %s.%s is not in the database's schema (version %d)", t.Name, c, s.version)
			}
		}
		for _, c := range target.archived() {
			if slices.Contains(t.Columns, c) {
				continue
			}
			if m.SchemaVersion == s.version {
				return refuse(ErrIncompatible, "table %s lacks column %s of its own schema version %d", t.Name, c, s.version)
			}
			if col, _ := target.column(c); col.notNull && !col.hasDefault {
				return refuse(ErrIncompatible, "column %s.%s is required since schema version %d and has no default: the archive (version %d) cannot be brought forward",
					t.Name, c, m.SchemaVersion+1, m.SchemaVersion)
			}
		}
	}
	if m.SchemaVersion == s.version {
		for _, name := range Tables {
			if !slices.ContainsFunc(m.Tables, func(t Table) bool { return t.Name == name }) {
				return refuse(ErrIncompatible, "the archive lacks table %s of its own schema version %d", name, s.version)
			}
		}
	}
	return nil
}

// lock takes the organization's fence lock for the transaction (tenant
// migration 000003): exclusive, so it waits for the organization's write
// transactions past their fence check, which hold it shared, and holds new
// ones back until the restore ends.
func (l loader) lock(ctx context.Context, tx pgx.Tx) error {
	var prev string
	err := tx.QueryRow(ctx, `SELECT current_setting('lock_timeout'), set_config('lock_timeout', $1, true)`,
		fmt.Sprintf("%dms", l.lockTimeout.Milliseconds())).Scan(&prev, nil)
	if err != nil {
		return fmt.Errorf("archive: lock timeout: %w", err)
	}
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tenantgate.fence'), hashtext($1::uuid::text))`, l.org)
	if err != nil {
		return fmt.Errorf("archive: wait for the organization's writes in flight: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, prev); err != nil {
		return fmt.Errorf("archive: lock timeout: %w", err)
	}
	return nil
}

// cleared are the tables whose rows of an organization Restore deletes
// and Import requires empty, children first: the archived ones and the
// excluded ones that are tenant data (not the fences).
func cleared() []string {
	out := []string{"idempotency_keys"}
	for i := len(Tables) - 1; i >= 0; i-- {
		out = append(out, Tables[i])
	}
	return out
}

func (l loader) deleteRows(ctx context.Context, tx pgx.Tx, s *dbSchema) error {
	for _, name := range cleared() {
		if s.tables[name] == nil {
			continue // idempotency_keys, before schema version 2
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{name}.Sanitize()+` WHERE organization_id = $1`, l.org); err != nil {
			return fmt.Errorf("archive: delete the organization's rows of %s: %w", name, err)
		}
	}
	return nil
}

func (l loader) ensureEmpty(ctx context.Context, tx pgx.Tx, s *dbSchema) error {
	var parts []string
	for _, name := range cleared() {
		if s.tables[name] != nil {
			parts = append(parts, fmt.Sprintf(`SELECT %s WHERE EXISTS (SELECT 1 FROM %s WHERE organization_id = $1)`,
				quoteLiteral(name), pgx.Identifier{name}.Sanitize()))
		}
	}
	rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), l.org)
	if err != nil {
		return fmt.Errorf("archive: look for the organization's rows: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("archive: look for the organization's rows: %w", err)
	}
	if len(found) > 0 {
		return &tenancy.Error{Code: tenancy.CodeConflict, Err: ErrNotEmpty, Message: fmt.Sprintf(
			"archive: organization %s already has rows in this database (%s): Import loads only into an empty organization, Restore replaces one",
			l.org, strings.Join(found, ", "))}
	}
	return nil
}

// load copies one data file into a staging table, then inserts its rows
// into the table under the organization's id. Staging is what lets a role
// under row-level security load with COPY (COPY FROM refuses a table whose
// row-level security applies to the caller), and what keeps the archive
// from choosing the organization id. (Copying straight into the table, for
// a role that bypasses row-level security, measured no faster.)
func (l loader) load(ctx context.Context, tx pgx.Tx, t Table, data io.Reader) error {
	ident := pgx.Identifier{t.Name}.Sanitize()
	stage := pgx.Identifier{"archive_" + t.Name}.Sanitize()
	cols := quoteList(t.Columns)
	_, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE `+stage+` ON COMMIT DROP AS SELECT `+cols+` FROM `+ident+` WITH NO DATA`)
	if err != nil {
		return fmt.Errorf("archive: stage %s: %w", t.Name, err)
	}
	tag, err := copyFrom(ctx, tx.Conn().PgConn(), data, `COPY `+stage+` (`+cols+`) FROM STDIN`)
	if err != nil {
		// A data file that fails its checksum may first fail COPY: say
		// so rather than what the database made of it.
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		if ctx.Err() == nil {
			if _, rerr := io.Copy(io.Discard, data); rerr != nil {
				return rerr
			}
		}
		return rejected(t.Name, err)
	}
	if tag.RowsAffected() != t.Rows {
		return corrupt("%s: the database read %d rows from %d lines", t.File, tag.RowsAffected(), t.Rows)
	}
	tag, err = tx.Exec(ctx, `INSERT INTO `+ident+` (organization_id, `+cols+`) SELECT $1, `+cols+` FROM `+stage, l.org)
	if err != nil {
		return rejected(t.Name, err)
	}
	if tag.RowsAffected() != t.Rows {
		return fmt.Errorf("archive: %s: %w: %d rows inserted of %d", t.Name, ErrMismatch, tag.RowsAffected(), t.Rows)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE `+stage); err != nil {
		return fmt.Errorf("archive: stage %s: %w", t.Name, err)
	}
	return nil
}

// skipTriggers turns off the triggers of the transaction's writes when
// the role may (a superuser, or one granted SET on
// session_replication_role), as pg_restore --disable-triggers does and as
// moves do: foreign-key checks are triggers, fired row by row, and they
// are most of a load's cost. checkReferences then checks every foreign
// key of the loaded rows at once. The fence trigger is off too, which
// changes nothing here: a restore holds the fence lock, and writes past
// the fence as the owner anyway.
func skipTriggers(ctx context.Context, tx pgx.Tx) (bool, error) {
	// Tried rather than checked: who may set it differs across versions.
	// A refusal aborts the savepoint only.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	if _, err := sp.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
			return false, fmt.Errorf("archive: session_replication_role: %w", err)
		}
		return false, sp.Rollback(ctx)
	}
	return true, sp.Commit(ctx)
}

// checkReferences checks the foreign keys of the organization's rows in
// the archive's tables, one anti-join per constraint, as the triggers
// skipTriggers turned off would have row by row (MATCH SIMPLE: a
// reference with a NULL column is not checked).
func (l loader) checkReferences(ctx context.Context, tx pgx.Tx, m Manifest) error {
	names := make([]string, len(m.Tables))
	for i, t := range m.Tables {
		names[i] = t.Name
	}
	rows, err := tx.Query(ctx, `
		SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
		       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
		             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
		       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
		             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
		FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
		WHERE c.contype = 'f' AND r.relnamespace = 'public'::regnamespace AND r.relname = ANY($1)
		ORDER BY 2, 1`, names)
	if err != nil {
		return fmt.Errorf("archive: read the foreign keys: %w", err)
	}
	type fk struct {
		name, child, parent string
		cols, refs          []string
	}
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fk, error) {
		var f fk
		return f, r.Scan(&f.name, &f.child, &f.parent, &f.cols, &f.refs)
	})
	if err != nil {
		return fmt.Errorf("archive: read the foreign keys: %w", err)
	}
	for _, f := range fks {
		var set, match []string
		for i, c := range f.cols {
			set = append(set, "c."+pgx.Identifier{c}.Sanitize()+" IS NOT NULL")
			match = append(match, "p."+pgx.Identifier{f.refs[i]}.Sanitize()+" = c."+pgx.Identifier{c}.Sanitize())
		}
		// Both names come from regclass::text: already quoted as needed.
		q := fmt.Sprintf(`SELECT count(*) FROM %s c WHERE c.organization_id = $1 AND %s
			AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)`,
			f.child, strings.Join(set, " AND "), f.parent, strings.Join(match, " AND "))
		var broken int64
		if err := tx.QueryRow(ctx, q, l.org).Scan(&broken); err != nil {
			return fmt.Errorf("archive: check %s: %w", f.name, err)
		}
		if broken > 0 {
			return refuse(ErrRejected, "table %s: %d rows refer to rows of %s that are not there (%s)", f.child, broken, f.parent, f.name)
		}
	}
	return nil
}

// copyFrom runs COPY … FROM STDIN on conn with the rows of data, and
// returns data's own error first. data is read by a goroutine of ours
// through a pipe, never by pgconn's: pgconn's CopyFrom may return on a
// server error while its reading goroutine is still in Read, and data
// (the archive's decoder) must not be read by two goroutines. When
// copyFrom returns, nothing reads data any more.
func copyFrom(ctx context.Context, conn *pgconn.PgConn, data io.Reader, sql string) (pgconn.CommandTag, error) {
	pr, pw := io.Pipe()
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(pw, data)
		pw.CloseWithError(err) // nil: COPY sees the end of the rows
		read <- err
	}()
	tag, err := conn.CopyFrom(ctx, pr, sql)
	// A COPY that stopped early stops reading: unblock our writer.
	pr.CloseWithError(io.ErrClosedPipe)
	if rerr := <-read; rerr != nil && !errors.Is(rerr, io.ErrClosedPipe) {
		return tag, rerr
	}
	return tag, err
}

// verify reads every table back, with Export's statement over the
// archive's columns, and compares rows and bytes with the manifest.
func (l loader) verify(ctx context.Context, tx pgx.Tx, s *dbSchema, m Manifest) error {
	var bad []string
	for _, t := range m.Tables {
		d := newDigest()
		tag, err := tx.Conn().PgConn().CopyTo(ctx, d, selectRows(s.tables[t.Name], t.Columns, t.Key, l.org))
		if err != nil {
			return fmt.Errorf("archive: read %s back: %w", t.Name, err)
		}
		if tag.RowsAffected() != t.Rows || d.sum() != t.SHA256 {
			bad = append(bad, fmt.Sprintf("%s (archive %d rows, database %d)", t.Name, t.Rows, tag.RowsAffected()))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("archive: %w: %s", ErrMismatch, strings.Join(bad, ", "))
	}
	return nil
}

// rejected turns the database's refusal of an archive's rows into
// ErrRejected; other errors stay what they are.
func rejected(table string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")) {
		return refuse(ErrRejected, "table %s: %s", table, pgErr.Message)
	}
	return fmt.Errorf("archive: load %s: %w", table, err)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
