// Package archive writes and reads tenant archives: one organization's
// tenant data, from whichever database holds it, as one portable,
// verifiable file (issue 15). It is the core of `tenantgate tenants
// export`, `import` and `restore` and of GET /api/organization/export.
//
//   - Export reads every tenant table of one organization in one snapshot
//     and writes the archive.
//   - Open and Verify read an archive and check it, without a database.
//   - Import loads an archive into a database as a new organization.
//   - Restore replaces one organization's rows with an archive's.
//
// The package touches tenant databases only, through a *pgx.Conn the
// caller opens; it knows nothing of the catalog, placements or plans.
//
// # Format, version 1
//
// An archive is a POSIX tar (ustar) stream compressed as one zstd frame
// with its content checksum (github.com/klauspost/compress/zstd), followed
// by a seal: a zstd skippable frame (magic 0x184D2A54, content length 36)
// holding "TGA1" and the SHA-256 of every byte of the file before the
// seal. zstd tools skip the seal: `zstd -dc FILE | tar -tv` lists an
// archive. The tar holds regular files only, in this order and no other:
//
//	manifest.json          the manifest, first
//	users.json             only when the export was asked for users
//	tables/<table>.copy    one per table, in the manifest's order
//
// Nothing may follow the last table file but the tar's end-of-archive
// blocks (zero bytes); nothing but the seal may follow the zstd frame, and
// nothing may follow the seal. An archive recompressed by another tool
// loses its seal and is refused: keep archives as Export wrote them.
//
// manifest.json is a JSON object:
//
//	{
//	  "format": "tenantgate-tenant-archive",
//	  "formatVersion": 1,
//	  "organization": {"id": "6f1c…", "slug": "acme", "name": "Acme", "plan": "pro"},
//	  "schemaVersion": 3,
//	  "exportedAt": "2026-11-30T10:00:00.123456Z",
//	  "tables": [
//	    {"name": "agents", "file": "tables/agents.copy",
//	     "columns": ["id", "name", "description", …], "key": ["id"],
//	     "rows": 120, "bytes": 18230, "sha256": "9b1e…"},
//	    …
//	  ],
//	  "users": {"file": "users.json", "count": 3, "bytes": 211, "sha256": "…"}
//	}
//
// Its fields:
//
//   - format names the kind of file; formatVersion is this layout's
//     version (FormatVersion). Any change of the layout, a new manifest
//     field included, makes a new version: readers decode the manifest
//     strictly and refuse a version newer than theirs (ErrNewerFormat).
//   - organization is the exported organization as the catalog knew it.
//   - schemaVersion is the tenant schema's migration version
//     (migrations/tenant) of the database exported from: the columns below
//     are that version's.
//   - exportedAt is the start of the snapshot (the database's now() in the
//     export's transaction), in UTC: the archive holds every write of the
//     organization committed before it and none after.
//   - tables lists every tenant table, parents before children (the order
//     they are loaded in); columns are the data file's columns in order
//     (every column of the table but organization_id and generated ones);
//     key is the column list rows are sorted by (the primary key without
//     organization_id); rows, bytes and sha256 (lowercase hex) describe the
//     data file exactly.
//   - users is present only for an export with users: users.json is a JSON
//     array of {"email", "name", "role"} objects, given by the caller (users
//     live in the catalog, not in tenant databases); count is its length.
//
// A data file is the output of PostgreSQL's COPY … TO STDOUT in its text
// format: one line per row ending in "\n", columns separated by a tab, NULL
// as \N, backslash escapes for backslash, tab, newline and carriage return;
// UTF-8. Values are rendered with TimeZone UTC, DateStyle ISO, IntervalStyle
// postgres, extra_float_digits 3 and bytea_output hex, and rows are sorted
// by key (a collatable key column in the "C" collation), so that the same
// rows always give the same bytes: that is what lets Import check that the
// database holds exactly what the file says. organization_id is left out:
// an archive is loaded under whatever organization id its importer names.
//
// # What an archive holds, and what it never holds
//
// Every row of the organization in the tenant tables (Tables): agents,
// tasks, messages, activity_logs, agent_sessions, schedules. Never:
// idempotency_keys (replayed responses, which may carry secrets shown once,
// such as a new API key), tenant_fences (the control plane's move fences),
// nor anything of the catalog: no password hashes, API keys or their hashes,
// tokens or billing records; users only as email, name and role, and only
// when the caller passes them. Export refuses a database where a tenant
// table it does not know exists (a migration added one: decide whether
// archives carry it, in Tables or excludedTables), or where a column's name
// says it holds a secret.
//
// # Integrity
//
// Every check is made while streaming, and a reader reports the first
// failure as ErrCorrupt with what failed: a changed byte fails the seal,
// and if it changed the content also zstd's checksum or a data file's
// SHA-256 (the seal is what catches the few bit flips that zstd's entropy
// coding decodes to the same content); a truncated archive fails the seal,
// zstd or tar framing, or misses a file the manifest lists; a file not
// listed, or in the wrong order, is refused. The checksums detect damage
// and edits by tools that do not know the format, not a forger who
// rewrites the manifest and the seal too: an archive is as trustworthy as
// the place it was kept (signing archives would be a new format version).
// Loading checks what checksums cannot: the database re-checks every row
// (types, constraints, foreign keys within the organization: ErrRejected),
// and each table is read back before commit and must give the archive's
// bytes again (ErrMismatch).
//
// # Export: memory and snapshot
//
// A tar header states its file's size, and the manifest, written first,
// states every file's checksum: neither is known before the table was read.
// Export therefore stages the tables' rows in one temporary file (in
// ExportOptions.TempDir) while it holds the snapshot, then writes the
// archive from it: memory stays bounded whatever the tables' sizes (COPY
// streams through fixed buffers), at the cost of disk space for the
// uncompressed rows, removed before Export returns. It also means the
// snapshot's transaction ends before the first byte reaches the caller's
// writer: a slow reader of an HTTP download holds no database connection
// or snapshot, and an export that fails in the database has written
// nothing, so its caller can still answer with an error status. The
// manifest first is what lets Import stream: it knows each table's columns
// and checksum before the table's rows arrive.
//
// # Import and Restore
//
// Both run in one transaction of the connection they are given and commit
// only after every data file matched its checksum, the archive ended where
// its manifest said (its seal included), and every table read back from
// the database gave the archive's rows and bytes; any failure, a cancelled
// context or a killed connection included, leaves the database as it was.
// Rows go through a temporary staging table per table (COPY FROM is
// refused into a table whose row-level security applies to the caller, the
// application role's case and a non-superuser owner's) and are inserted
// from it under the target organization's id, so an archive can only ever
// write rows of that organization. Object ids are kept: keys, uniques and
// foreign keys are composite on organization_id, so the same ids may exist
// under another organization in the same database.
//
// A role that may (a superuser, or one granted SET on
// session_replication_role) loads with triggers off, as pg_restore
// --disable-triggers and moves do: foreign-key checks are triggers, fired
// row by row, and most of a load's cost. Every foreign key of the loaded
// rows is then checked at once, one anti-join per constraint, before the
// read-back. Any other role loads with the triggers on.
//
// Import loads into an organization with no rows in the database
// (ErrNotEmpty otherwise). Restore first deletes the organization's rows
// (idempotency records included: they describe requests against the state
// being replaced), children before parents, then loads. It takes the
// organization's fence lock (the advisory lock of tenant migration 000003,
// which every write of the tenant takes in shared mode): writes of the
// organization in flight are waited for, and new ones wait until the
// restore committed or rolled back, so no write lands between the delete
// and the verification. Both write past the organization's move fence when
// connected as the schema owner, as a move does, so a caller may fence the
// tenant around a restore to refuse its writes with 503.
//
// # Schema versions
//
// An archive is loaded into a database whose tenant schema is at the
// archive's version or a newer one, and never when this binary's tenant
// migrations stop before the archive's version (ErrNewerSchema: the
// archive comes from a newer tenantgate, or the database must be migrated
// first). An older archive is brought forward by the rule additive
// migrations follow: a column the archive lacks takes its default (NULL
// when it has none), a table the archive lacks stays empty. Where that rule
// cannot apply (a new NOT NULL column without a default, a column the
// archive has and the database lost) the import is refused with
// ErrIncompatible before anything is written. A migration that changes
// what existing columns mean must add its conversion here, keyed by the
// version it introduces; there is none up to tenant schema version 3.
package archive
