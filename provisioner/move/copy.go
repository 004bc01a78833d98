package move

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/tenancy"
)

// tenantTables hold the tenant's rows, parents before children: the order
// rows are copied in (foreign keys are checked per statement), and the
// reverse of the order they are deleted in.
var tenantTables = []string{"agents", "tasks", "messages", "activity_logs", "agent_sessions", "schedules", "idempotency_keys"}

// table is a tenant table with its column list, quoted, in the source's
// order; the target must have the same columns.
type table struct {
	name, ident, cols string
	order             string // the key, ordered the same on any server
}

// resolveTables reads the tenant tables' columns from both databases and
// checks that they are at the same, clean schema version with the same
// columns (rows are copied in binary form, column for column), and that no
// table with tenant rows is missing from tenantTables.
func (m *mover) resolveTables(ctx context.Context, src, dst tenancy.Database) error {
	a, err := m.schemaOf(ctx, src)
	if err != nil {
		return err
	}
	b, err := m.schemaOf(ctx, dst)
	if err != nil {
		return err
	}
	if err := compatible(src.Name, a, dst.Name, b); err != nil {
		return err
	}
	m.tables = m.tables[:0]
	for _, name := range tenantTables {
		order := "id"
		if name == "idempotency_keys" {
			order = `key COLLATE "C"`
		}
		m.tables = append(m.tables, table{name: name, ident: pgx.Identifier{name}.Sanitize(), cols: a.cols[name], order: order})
	}
	return nil
}

// compatible reports why rows cannot be copied from schema a to schema b.
func compatible(aName string, a schemaInfo, bName string, b schemaInfo) error {
	if a.version != b.version || a.dirty || b.dirty {
		return fmt.Errorf("move: schema of %s is at version %d (dirty: %t), of %s at %d (dirty: %t): migrate them first",
			aName, a.version, a.dirty, bName, b.version, b.dirty)
	}
	for _, info := range []schemaInfo{a, b} {
		for name := range info.cols {
			if !slices.Contains(tenantTables, name) {
				// A migration added a table of tenant rows the mover does
				// not know: moving without it would lose them.
				return fmt.Errorf("move: table %s holds tenant rows but is not among the tables moves copy", name)
			}
		}
	}
	if !maps.Equal(a.cols, b.cols) {
		return fmt.Errorf("move: the tenant tables of %s and %s have different columns", aName, bName)
	}
	for _, name := range tenantTables {
		if a.cols[name] == "" {
			return fmt.Errorf("move: %s has no table %s", aName, name)
		}
	}
	return nil
}

type schemaInfo struct {
	version int64
	dirty   bool
	cols    map[string]string // every table with tenant rows → quoted column list
}

func (m *mover) schemaOf(ctx context.Context, db tenancy.Database) (schemaInfo, error) {
	s := schemaInfo{cols: map[string]string{}}
	err := m.withTx(ctx, db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&s.version, &s.dirty)
		if err != nil {
			return fmt.Errorf("schema version: %w", err)
		}
		rows, err := tx.Query(ctx, `
			SELECT c.relname, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname <> 'tenant_fences'
			  AND a.attnum > 0 AND NOT a.attisdropped
			  AND EXISTS (SELECT 1 FROM pg_attribute o WHERE o.attrelid = c.oid AND o.attname = 'organization_id' AND NOT o.attisdropped)
			GROUP BY c.relname`)
		if err != nil {
			return err
		}
		var name, cols string
		_, err = pgx.ForEachRow(rows, []any{&name, &cols}, func() error {
			s.cols[name] = cols
			return nil
		})
		return err
	})
	if err != nil {
		return s, fmt.Errorf("move: read the schema of %s: %w", db.Name, err)
	}
	return s, nil
}

// copyAndVerify copies every row of the tenant from the source to the
// target as of one snapshot of the source, taken after the fence: so it
// holds every write of the tenant that ever committed there. The target
// side is one transaction that first removes what an interrupted copy
// left, and commits only once every table reads back exactly as it was
// sent. So the target holds all of the tenant's rows or none.
func (m *mover) copyAndVerify(ctx context.Context, src, dst tenancy.Database) error {
	sconn, err := m.conn(ctx, src)
	if err != nil {
		return err
	}
	dconn, err := m.conn(ctx, dst)
	if err != nil {
		return err
	}

	snap, err := sconn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("move: snapshot of %s: %w", src.Name, err)
	}
	defer snap.Rollback(context.WithoutCancel(ctx))
	into, err := dconn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("move: copy into %s: %w", dst.Name, err)
	}
	defer into.Rollback(context.WithoutCancel(ctx))

	sent, err := m.copyAll(ctx, snap, into, dst.Kind == tenancy.KindDedicated)
	if err != nil {
		return fmt.Errorf("move: copy from %s to %s: %w", src.Name, dst.Name, err)
	}
	if err := m.hook(ctx, StepCopy); err != nil {
		return err
	}
	m.step(StepVerify)
	if err := m.tamper(ctx, into); err != nil {
		return err
	}
	if err := m.verify(ctx, into, sent); err != nil {
		return err
	}
	if err := into.Commit(ctx); err != nil {
		return fmt.Errorf("move: commit the copy into %s: %w", dst.Name, err)
	}
	return m.hook(ctx, StepVerify)
}

// copyAll copies every tenant table and returns the digest of what each
// sent. own says the target is the tenant's own database, which nobody
// else reads or writes before the switch.
func (m *mover) copyAll(ctx context.Context, snap, into pgx.Tx, own bool) ([]digest, error) {
	if err := m.readAs(ctx, snap); err != nil {
		return nil, err
	}
	if err := m.writePast(ctx, into); err != nil {
		return nil, err
	}
	direct, err := skipTriggers(ctx, into)
	if err != nil {
		return nil, err
	}
	var unforced []string
	if !direct && own {
		if unforced, err = m.unforce(ctx, into); err != nil {
			return nil, err
		}
		direct = unforced != nil
	}
	if err := deleteTenant(ctx, into, m.org); err != nil {
		return nil, err
	}
	sent := make([]digest, len(m.tables))
	for i, t := range m.tables {
		if sent[i], err = m.copyTable(ctx, snap, into, t, direct); err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	if err := force(ctx, into, unforced); err != nil {
		return nil, err
	}
	return sent, nil
}

// unforce lifts FORCE ROW LEVEL SECURITY from the tenant tables for the
// copy transaction, so that their owner may COPY straight into them
// instead of through temporary tables (COPY FROM refuses a table whose
// row-level security applies to the caller). Only for the tenant's own
// database: ALTER TABLE locks the tables until commit, and force puts the
// setting back before then, so no other session ever sees it lifted. It
// returns the tables it changed (tenant_fences, whose security is not
// forced by design, is not among them); nil, having changed nothing, when
// the mover does not own the tables.
func (m *mover) unforce(ctx context.Context, tx pgx.Tx) ([]string, error) {
	names := make([]string, len(m.tables))
	for i, t := range m.tables {
		names[i] = t.name
	}
	rows, err := tx.Query(ctx, `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
		AND relkind = 'r' AND relforcerowsecurity AND relname = ANY($1) ORDER BY relname`, names)
	if err != nil {
		return nil, err
	}
	forced, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(forced) == 0 {
		return nil, err
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range forced {
		if _, err := sp.Exec(ctx, `ALTER TABLE `+pgx.Identifier{name}.Sanitize()+` NO FORCE ROW LEVEL SECURITY`); err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege: not the owner
				return nil, err
			}
			return nil, sp.Rollback(ctx)
		}
	}
	return forced, sp.Commit(ctx)
}

// force restores what unforce lifted, in the same transaction.
func force(ctx context.Context, tx pgx.Tx, tables []string) error {
	for _, name := range tables {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{name}.Sanitize()+` FORCE ROW LEVEL SECURITY`); err != nil {
			return err
		}
	}
	return nil
}

// readAs makes the snapshot transaction see the tenant's rows even when the
// owner is subject to the forced row-level security.
func (m *mover) readAs(ctx context.Context, snap pgx.Tx) error {
	_, err := snap.Exec(ctx, `SELECT set_config('app.organization_id', $1, true)`, m.org)
	return err
}

// selectRows is the COPY that reads a table's rows of the tenant, in binary
// and in key order: the same statement on both sides yields the same bytes
// for the same rows, whatever the servers' time zones or collations.
func (m *mover) selectRows(t table) string {
	return fmt.Sprintf(`COPY (SELECT %s FROM %s WHERE organization_id = '%s' ORDER BY %s) TO STDOUT (FORMAT binary)`,
		t.cols, t.ident, m.org, t.order)
}

// copyTable streams one table's rows of the tenant from the snapshot into
// the target with COPY, and returns the digest of what it sent. direct
// copies straight into the table, for an owner that bypasses row-level
// security; otherwise the rows land in a temporary table first and are
// inserted from there, because COPY FROM refuses a table under row-level
// security to a role that does not bypass it.
func (m *mover) copyTable(ctx context.Context, snap, into pgx.Tx, t table, direct bool) (digest, error) {
	in := fmt.Sprintf(`COPY %s (%s) FROM STDIN (FORMAT binary)`, t.ident, t.cols)
	stage := pgx.Identifier{"move_" + t.name}.Sanitize()
	if !direct {
		_, err := into.Exec(ctx, `CREATE TEMPORARY TABLE `+stage+` ON COMMIT DROP AS SELECT `+t.cols+` FROM `+t.ident+` WITH NO DATA`)
		if err != nil {
			return digest{}, err
		}
		in = fmt.Sprintf(`COPY %s (%s) FROM STDIN (FORMAT binary)`, stage, t.cols)
	}
	d, err := pipe(ctx, snap.Conn(), m.selectRows(t), into.Conn(), in)
	if err != nil || direct {
		return d, err
	}
	_, err = into.Exec(ctx, `INSERT INTO `+t.ident+` (`+t.cols+`) SELECT `+t.cols+` FROM `+stage)
	return d, err
}

// skipTriggers turns off the triggers of the transaction's writes when the
// owner may (a superuser, or a role granted SET on
// session_replication_role, as managed services allow), as pg_restore
// --disable-triggers does. Foreign-key checks are triggers, and they are
// most of the cost of a bulk copy; the rows come from one consistent
// snapshot and are verified, and the mover is let past the fences anyway.
// It reports whether the owner may also COPY straight into the tables: only
// a role that bypasses row-level security may.
func skipTriggers(ctx context.Context, tx pgx.Tx) (direct bool, err error) {
	err = tx.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&direct)
	if err != nil {
		return false, err
	}
	// Tried rather than checked: who may set it differs across versions.
	// A refusal aborts the statement only, thanks to the savepoint.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	if _, err := sp.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
			return false, err
		}
		return direct, sp.Rollback(ctx)
	}
	return direct, sp.Commit(ctx)
}

// digest is what a COPY carried: its row count and a SHA-256 of its bytes.
type digest struct {
	rows int64
	sum  [sha256.Size]byte
}

// pipe runs COPY … TO STDOUT on from and COPY … FROM STDIN on to at once,
// streaming the rows between them without holding a table in memory, and
// returns the digest of the stream.
func pipe(ctx context.Context, from *pgx.Conn, out string, to *pgx.Conn, in string) (digest, error) {
	r, w := io.Pipe()
	h := sha256.New()
	sent := make(chan error, 1)
	var tag pgconn.CommandTag
	go func() {
		var err error
		tag, err = from.PgConn().CopyTo(ctx, io.MultiWriter(w, h), out)
		w.CloseWithError(err) // nil: the reader sees EOF
		sent <- err
	}()
	_, err := to.PgConn().CopyFrom(ctx, r, in)
	// A failed COPY FROM stops reading: unblock the writer so the
	// goroutine ends (its COPY TO then fails too).
	r.CloseWithError(errors.Join(err, io.ErrClosedPipe))
	if err := errors.Join(<-sent, err); err != nil {
		return digest{}, err
	}
	d := digest{rows: tag.RowsAffected()}
	h.Sum(d.sum[:0])
	return d, nil
}

// verify reads every table's rows of the tenant back from the target, in
// its copy transaction, with the statement that read them from the source,
// and compares the digests: the same rows, byte for byte, in the same
// order, or the copy is refused.
func (m *mover) verify(ctx context.Context, into pgx.Tx, sent []digest) error {
	var bad []string
	for i, t := range m.tables {
		h := sha256.New()
		tag, err := into.Conn().PgConn().CopyTo(ctx, h, m.selectRows(t))
		if err != nil {
			return fmt.Errorf("move: read %s back: %w", t.name, err)
		}
		got := digest{rows: tag.RowsAffected()}
		h.Sum(got.sum[:0])
		m.log.Info("verified", "table", t.name, "rows", sent[i].rows, "match", got == sent[i])
		if got != sent[i] {
			bad = append(bad, fmt.Sprintf("%s (source %d rows, target %d)", t.name, sent[i].rows, got.rows))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrMismatch, bad)
	}
	return nil
}
