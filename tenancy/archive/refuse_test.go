package archive_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// A damaged, truncated or altered archive is refused by Verify, Import and
// Restore, with ErrCorrupt and a message saying what failed, and nothing
// is written: no row in the import's database, the restored tenant's rows
// byte for byte as before.
func TestTamperedArchivesRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 400, "acme")
	good, m := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	last := m.Tables[len(m.Tables)-1]

	flip := func(at int) []byte {
		out := bytes.Clone(good)
		out[at] ^= 0x01
		return out
	}
	// editFile repacks the archive with one file's content changed.
	editFile := func(name string, edit func([]byte) []byte) []byte {
		entries := unpack(t, good)
		for i := range entries {
			if entries[i].name == name {
				entries[i].data = edit(bytes.Clone(entries[i].data))
			}
		}
		return pack(t, entries)
	}
	entries := unpack(t, good)
	var extraFrame bytes.Buffer
	zw, err := zstd.NewWriter(&extraFrame)
	require.NoError(t, err)
	_, err = zw.Write([]byte("more data"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())

	cases := []struct {
		name, want string
		data       []byte
	}{
		{"byte flipped in the zstd header", "", flip(5)},
		{"byte flipped at 25%", "", flip(len(good) / 4)},
		{"byte flipped at 50%", "", flip(len(good) / 2)},
		{"byte flipped at 90%", "", flip(len(good) * 9 / 10)},
		{"byte flipped in the zstd checksum", "", flip(len(good) - sealLen - 1)},
		{"one byte of the last table changed", last.File + ": SHA-256 differs", editFile(last.File, func(d []byte) []byte {
			d[len(d)/2] ^= 0x01
			return d
		})},
		{"last row of the last table dropped", last.File + ": ", editFile(last.File, func(d []byte) []byte {
			return d[:bytes.LastIndexByte(d[:len(d)-1], '\n')+1]
		})},
		{"row count raised in the manifest", "rows, the manifest says", editManifest(t, good, func(m map[string]any) {
			tbl := m["tables"].([]any)[2].(map[string]any)
			tbl["rows"] = tbl["rows"].(float64) + 1
		})},
		{"checksum changed in the manifest", "SHA-256 differs", editManifest(t, good, func(m map[string]any) {
			tbl := m["tables"].([]any)[0].(map[string]any)
			tbl["sha256"] = "00" + tbl["sha256"].(string)[2:]
		})},
		{"unknown manifest field", "unknown field", editManifest(t, good, func(m map[string]any) { m["extra"] = true })},
		{"truncated at 50%", "truncated", good[:len(good)/2]},
		{"truncated, then sealed again", "truncated", sealed(unsealed(good)[:len(good)/2])},
		{"truncated by one byte", "", good[:len(good)-1]},
		{"truncated to 100 bytes", "", good[:100]},
		{"empty", "", nil},
		{"last table file missing", "ends before " + last.File, pack(t, entries[:len(entries)-1])},
		{"tables out of order", "where tables/tasks.copy was expected",
			pack(t, append([]entry{entries[0], entries[1], entries[3], entries[2]}, entries[4:]...))},
		{"file added at the end", `unexpected file "tables/extra.copy"`, pack(t, append(entries[:len(entries):len(entries)], entry{"tables/extra.copy", []byte("x\n")}))},
		{"file added after the manifest", `found "notes.txt"`, pack(t, append([]entry{entries[0], {"notes.txt", []byte("hi")}}, entries[1:]...))},
		{"garbage after the zstd frame", "", sealed(append(unsealed(good), "garbage"...))},
		{"data after the tar, in a second frame", "data after the end of the tar", sealed(append(unsealed(good), extraFrame.Bytes()...))},
		{"garbage after the seal", "does not end with its seal", append(bytes.Clone(good), "garbage"...)},
		{"seal missing", "does not end with its seal", unsealed(good)},
		{"byte flipped in the seal", "seal does not match", flip(len(good) - 1)},
		{"not an archive", "", []byte("just some text, not zstd")},
		{"another tar", "found", pack(t, []entry{{"README", []byte("hello")}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := archive.Verify(bytes.NewReader(tc.data))
			require.ErrorIs(t, err, archive.ErrCorrupt)
			require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
			require.ErrorContains(t, err, tc.want)

			_, err = archive.Import(ctx, bytes.NewReader(tc.data), b.owner(t, b.dedicated), uuid.NewString(), archive.ImportOptions{})
			require.ErrorIs(t, err, archive.ErrCorrupt)
			require.ErrorContains(t, err, tc.want)
			require.Zero(t, total(t, b.dedicated), "nothing written")
		})
	}

	// Restore too: the tenant keeps its rows, untouched.
	before := raw(t, b.shared, a.ID)
	for _, tc := range cases[5:8] {
		_, err := archive.Restore(ctx, bytes.NewReader(tc.data), b.owner(t, b.shared), a.ID, archive.RestoreOptions{})
		require.ErrorIs(t, err, archive.ErrCorrupt, tc.name)
		require.Equal(t, before, raw(t, b.shared, a.ID), tc.name)
	}

	// The untouched archive still loads.
	_, err = archive.Import(ctx, bytes.NewReader(good), b.owner(t, b.dedicated), uuid.NewString(), archive.ImportOptions{})
	require.NoError(t, err)
}

// An archive of a newer format, or of a newer tenant schema than this
// binary or the database knows, is refused with a message that says so,
// and nothing is written.
func TestNewerVersionsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 200, "acme")
	good, m := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	versions, err := schema.Versions(migrations.Tenant, "tenant")
	require.NoError(t, err)
	newest := versions[len(versions)-1]
	require.Equal(t, newest, m.SchemaVersion)

	t.Run("format", func(t *testing.T) {
		// A newer format may have fields this one does not know: the
		// version is what is reported.
		newer := editManifest(t, good, func(m map[string]any) {
			m["formatVersion"] = archive.FormatVersion + 1
			m["signature"] = "…"
		})
		_, err := archive.Verify(bytes.NewReader(newer))
		require.ErrorIs(t, err, archive.ErrNewerFormat)
		require.ErrorContains(t, err, "format version 2 is newer than this tenantgate reads (up to 1)")
		_, err = archive.Open(bytes.NewReader(newer))
		require.ErrorIs(t, err, archive.ErrNewerFormat)
		_, err = archive.Import(ctx, bytes.NewReader(newer), b.owner(t, b.dedicated), uuid.NewString(), archive.ImportOptions{})
		require.ErrorIs(t, err, archive.ErrNewerFormat)
		require.Zero(t, total(t, b.dedicated))
	})
	t.Run("schema newer than the binary", func(t *testing.T) {
		newer := editManifest(t, good, func(m map[string]any) { m["schemaVersion"] = newest + 1 })
		_, err := archive.Verify(bytes.NewReader(newer))
		require.NoError(t, err, "the archive itself is sound")
		_, err = archive.Import(ctx, bytes.NewReader(newer), b.owner(t, b.dedicated), uuid.NewString(), archive.ImportOptions{})
		require.ErrorIs(t, err, archive.ErrNewerSchema)
		require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
		require.ErrorContains(t, err, "newer than this tenantgate knows")
		require.Zero(t, total(t, b.dedicated))
		before := raw(t, b.shared, a.ID)
		_, err = archive.Restore(ctx, bytes.NewReader(newer), b.owner(t, b.shared), a.ID, archive.RestoreOptions{})
		require.ErrorIs(t, err, archive.ErrNewerSchema)
		require.Equal(t, before, raw(t, b.shared, a.ID))
	})
	t.Run("schema newer than the database", func(t *testing.T) {
		name := b.env.Prefix + "v1"
		old := b.env.DatabaseURL(t, name)
		require.NoError(t, schema.CreateDatabase(ctx, b.env.ServerURL, name))
		_, err := schema.MigrateTo(ctx, old, migrations.Tenant, "tenant", 1)
		require.NoError(t, err)
		_, err = archive.Import(ctx, bytes.NewReader(good), b.owner(t, old), uuid.NewString(), archive.ImportOptions{})
		require.ErrorIs(t, err, archive.ErrNewerSchema)
		require.ErrorContains(t, err, "migrate the database first")
	})
}

// Any one bit changed anywhere in the file is refused, even where it would
// decode to the same content (zstd's entropy coding has such slack): the
// seal covers every byte.
func TestEveryByteCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 100, "acme")
	good, _ := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	_, err := archive.Verify(bytes.NewReader(good))
	require.NoError(t, err)
	// Every byte of the frame's start (headers, first tables of codes)
	// and end (last block, checksum, seal), one in five in between.
	for i := 0; i < len(good); i++ {
		if i > 256 && i < len(good)-256 && i%5 != 0 {
			continue
		}
		for _, bit := range []byte{0x01, 0x80} {
			d := bytes.Clone(good)
			d[i] ^= bit
			_, err := archive.Verify(bytes.NewReader(d))
			require.ErrorIs(t, err, archive.ErrCorrupt, "bit %#x of byte %d of %d", bit, i, len(good))
		}
	}
}

// rewriteTable repacks the archive with one table's data file changed by
// edit, and the manifest made to match: what a tool that knows the format
// could forge. The checksums hold; the database must refuse the rows.
func rewriteTable(t testing.TB, data []byte, table string, edit func([]byte) []byte) []byte {
	t.Helper()
	entries := unpack(t, data)
	var m map[string]any
	require.NoError(t, json.Unmarshal(entries[0].data, &m))
	for i := range entries {
		if entries[i].name != "tables/"+table+".copy" {
			continue
		}
		entries[i].data = edit(entries[i].data)
		for _, tbl := range m["tables"].([]any) {
			tbl := tbl.(map[string]any)
			if tbl["name"] == table {
				sum := sha256.Sum256(entries[i].data)
				tbl["sha256"] = hex.EncodeToString(sum[:])
				tbl["bytes"] = len(entries[i].data)
				tbl["rows"] = bytes.Count(entries[i].data, []byte("\n"))
			}
		}
	}
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	entries[0].data = raw
	return pack(t, entries)
}

// Rows that pass the archive's checksums but break the schema (a task of
// an agent that is not there, a status out of range, a column too many)
// are refused with ErrRejected, whether foreign keys are checked row by
// row (the application role) or all at once after the load (a role that
// may turn triggers off), and nothing is written.
func TestImportRejectsInvalidRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 500, "acme")
	good, _ := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	firstLine := func(d []byte) []byte { return d[bytes.IndexByte(d, '\n')+1:] }

	forged := map[string][]byte{
		// Every task of the first agent now points nowhere.
		"dangling reference": rewriteTable(t, good, "agents", firstLine),
		"check constraint": rewriteTable(t, good, "agents", func(d []byte) []byte {
			return bytes.Replace(d, []byte("\tactive\t"), []byte("\tbogus\t"), 1)
		}),
		"extra column": rewriteTable(t, good, "schedules", func(d []byte) []byte {
			return bytes.Replace(d, []byte("\n"), []byte("\textra\n"), 1)
		}),
	}
	for name, data := range forged {
		t.Run(name, func(t *testing.T) {
			_, err := archive.Verify(bytes.NewReader(data))
			require.NoError(t, err, "the forgery passes the checksums")
			for role, conn := range map[string]*archiveConn{
				"owner":            {b.owner(t, b.dedicated), 0},
				"application-role": {b.app(t, b.dedicated), version(t, b.dedicated)},
			} {
				_, err := archive.Import(ctx, bytes.NewReader(data), conn.conn, uuid.NewString(), archive.ImportOptions{SchemaVersion: conn.version})
				require.ErrorIs(t, err, archive.ErrRejected, role)
				require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err), role)
				t.Log(role, ": ", err)
				require.Zero(t, total(t, b.dedicated), role)
			}
		})
	}
}
