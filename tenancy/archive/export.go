package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"

	"github.com/tenantgate/tenantgate/tenancy"
)

// ExportOptions are Export's options; the zero value exports without
// users, reading the schema version from the database.
type ExportOptions struct {
	// Users, when not nil, are written to users.json (`--with-users`),
	// even when empty. The caller reads them from the catalog.
	Users []User
	// SchemaVersion is the source database's tenant schema version, as the
	// catalog records it; the caller vouches that the database is not
	// dirty. Zero reads both from the database's schema_migrations, which
	// only the schema owner may.
	SchemaVersion uint
	// TempDir is where the rows are staged while the snapshot is open
	// (about their uncompressed size on disk, removed before Export
	// returns); "" is os.TempDir().
	TempDir string
	// Progress, when set, is called after each table was read, with its
	// row count.
	Progress func(table string, rows int64)
}

// Export writes an archive of the organization org to w, reading its rows
// from src, a connection to the database that holds them (any placement,
// shared or dedicated), as the schema owner or as the application role.
// src must not be in a transaction; Export leaves it usable.
//
// Every tenant table is read in one snapshot (a REPEATABLE READ, READ
// ONLY transaction) scoped to the organization: app.organization_id is
// set for the row-level security policies and every query filters on
// organization_id, so no other tenant's row is read even by a role that
// bypasses row-level security. The tenant's writes go on meanwhile.
//
// Nothing is written to w until the snapshot is complete and closed (see
// the package documentation): an error returned before that leaves w
// untouched, so an HTTP handler can still answer with an error status. An
// error while writing (w failed, ctx ended) leaves a partial archive in w,
// which every reader refuses: it lacks its seal. It returns the archive's
// manifest.
func Export(ctx context.Context, w io.Writer, src *pgx.Conn, org tenancy.Organization, opts ExportOptions) (Manifest, error) {
	id, err := canonicalID(org.ID)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{
		Format:        formatName,
		FormatVersion: FormatVersion,
		Organization:  Organization{ID: id, Slug: org.Slug, Name: org.Name, Plan: org.Plan},
	}
	var users []byte
	if opts.Users != nil {
		if users, err = json.Marshal(opts.Users); err != nil {
			return Manifest{}, fmt.Errorf("archive: users: %w", err)
		}
		sum := sha256.Sum256(users)
		m.Users = &UsersFile{File: usersFile, Count: len(opts.Users), Bytes: int64(len(users)), SHA256: hex.EncodeToString(sum[:])}
	}

	stage, err := os.CreateTemp(opts.TempDir, "tenantgate-export-*")
	if err != nil {
		return Manifest{}, fmt.Errorf("archive: staging file: %w", err)
	}
	// Unlinked at once where the system allows (the open file stays
	// usable), so that a process killed mid-export leaves no tenant data
	// behind; removed at the end elsewhere.
	os.Remove(stage.Name())
	defer func() {
		stage.Close()
		os.Remove(stage.Name())
	}()
	if err := snapshot(ctx, src, &m, stage, opts); err != nil {
		return Manifest{}, err
	}
	if err := write(ctx, w, m, users, stage); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// snapshot copies the organization's rows of every table into stage, in
// one snapshot, and fills in m's schema version, time and tables.
func snapshot(ctx context.Context, src *pgx.Conn, m *Manifest, stage *os.File, opts ExportOptions) error {
	org := m.Organization.ID
	tx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("archive: begin the snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The snapshot is taken by the transaction's first statement.
	if err := settings(ctx, tx, org, false); err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&m.ExportedAt); err != nil {
		return fmt.Errorf("archive: snapshot time: %w", err)
	}
	m.ExportedAt = m.ExportedAt.UTC()
	s, err := readSchema(ctx, tx, opts.SchemaVersion)
	if err != nil {
		return err
	}
	if s.dirty {
		return fmt.Errorf("archive: the database is dirty at schema version %d: repair it before exporting", s.version)
	}
	if err := s.checkKnown(); err != nil {
		return err
	}
	if err := s.checkSecrets(); err != nil {
		return err
	}
	m.SchemaVersion = s.version

	buf := bufio.NewWriterSize(stage, 1<<20)
	for _, name := range Tables {
		t := s.tables[name]
		cols := t.archived()
		d := newDigest()
		tag, err := tx.Conn().PgConn().CopyTo(ctx, io.MultiWriter(buf, d), selectRows(t, cols, t.key, org))
		if err != nil {
			return fmt.Errorf("archive: read %s: %w", name, err)
		}
		if d.lines != tag.RowsAffected() || !d.whole() {
			// COPY escapes newlines inside values: a row is a line.
			return fmt.Errorf("archive: read %s: %d rows in %d lines", name, tag.RowsAffected(), d.lines)
		}
		m.Tables = append(m.Tables, Table{Name: name, File: tablesDir + name + tableExt, Columns: cols, Key: t.key,
			Rows: d.lines, Bytes: d.bytes, SHA256: d.sum()})
		if opts.Progress != nil {
			opts.Progress(name, d.lines)
		}
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("archive: staging file: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("archive: end the snapshot: %w", err)
	}
	return nil
}

// write writes the archive: manifest, users, then each table's data from
// stage, where they lie one after the other in m's order; then the seal.
func write(ctx context.Context, w io.Writer, m Manifest, users []byte, stage *os.File) error {
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("archive: manifest: %w", err)
	}
	sum := sha256.New()
	// At most 4 concurrent encoders: memory grows with each, and the
	// database, not compression, bounds an export's speed.
	zw, err := zstd.NewWriter(io.MultiWriter(w, sum), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(min(runtime.GOMAXPROCS(0), 4)))
	if err != nil {
		return fmt.Errorf("archive: zstd: %w", err)
	}
	if err := writeTar(ctx, zw, m, manifest, users, stage); err != nil {
		zw.Close() // ends the encoder's goroutines
		return err
	}
	if err := zw.Close(); err != nil { // the end of the frame
		return fmt.Errorf("archive: write: %w", err)
	}
	if _, err := w.Write(seal(sum.Sum(nil))); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	return nil
}

func writeTar(ctx context.Context, zw io.Writer, m Manifest, manifest, users []byte, stage *os.File) error {
	tw := tar.NewWriter(zw)
	mtime := m.ExportedAt.Truncate(time.Second)
	put := func(name string, size int64, body io.Reader) error {
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size,
			ModTime: mtime, Format: tar.FormatUSTAR})
		if err != nil {
			return fmt.Errorf("archive: write %s: %w", name, err)
		}
		if _, err := io.Copy(tw, ctxReader{ctx, body}); err != nil {
			return fmt.Errorf("archive: write %s: %w", name, err)
		}
		return nil
	}
	if err := put(manifestFile, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return err
	}
	if m.Users != nil {
		if err := put(usersFile, int64(len(users)), bytes.NewReader(users)); err != nil {
			return err
		}
	}
	var offset int64
	for _, t := range m.Tables {
		if err := put(t.File, t.Bytes, io.NewSectionReader(stage, offset, t.Bytes)); err != nil {
			return err
		}
		offset += t.Bytes
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// digest is a writer that hashes and counts what goes through it.
type digest struct {
	h     hash.Hash
	bytes int64
	lines int64
	last  byte
}

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d.h.Write(p)
	d.bytes += int64(len(p))
	d.lines += int64(bytes.Count(p, newline))
	d.last = p[len(p)-1]
	return len(p), nil
}

var newline = []byte{'\n'}

// whole reports whether what was written is whole lines.
func (d *digest) whole() bool { return d.bytes == 0 || d.last == '\n' }

func (d *digest) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }
