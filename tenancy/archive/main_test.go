package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bundle is one test's databases: a shared one and a dedicated one, both
// with the tenant schema and the application role, as the provisioner
// makes them.
type bundle struct {
	env       *tenancytest.Env
	shared    string // owner DSNs
	dedicated string
}

func setup(t testing.TB) *bundle {
	t.Helper()
	e := tenancytest.NewEnv(t)
	return &bundle{env: e, shared: e.NewTenantDatabase(t, "shared"), dedicated: e.NewTenantDatabase(t, "dedicated")}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// owner connects to dsn as the schema owner (a superuser here).
func (b *bundle) owner(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	return tenancytest.Connect(t, dsn)
}

// app connects to dsn as the application role: not owner, no BYPASSRLS,
// no access to schema_migrations.
func (b *bundle) app(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	return tenancytest.Connect(t, b.env.AppURL(t, dsn))
}

// version is dsn's tenant schema version, as the catalog would record it.
func version(t testing.TB, dsn string) uint {
	t.Helper()
	v, err := schema.CurrentVersion(testCtx(t), dsn)
	require.NoError(t, err)
	return v.Version
}

func org(slug string) tenancy.Organization {
	return tenancy.Organization{ID: uuid.NewString(), Slug: slug, Name: "Org " + slug, Plan: tenancy.PlanPro}
}

// seed writes about n rows of the organization into dsn, as its owner,
// spread over every tenant table with their references filled in; values
// include NULLs, JSON, text beyond ASCII with tabs, newlines and
// backslashes, and marker, so that an archive holding any of them can be
// told. Idempotency records are seeded too: archives must leave them out.
func seed(t testing.TB, dsn, orgID string, n int, marker string) {
	t.Helper()
	ctx := testCtx(t)
	agents, tasks, messages, logs, sessions, schedules := max(n/100, 1), n/5, n*2/5, n*3/10, n/25, max(n/100, 1)
	keys := max(n/100, 1)
	stmts := []string{
		`INSERT INTO agents (organization_id, name, description, model, status, created_at, deleted_at)
		 SELECT $1, $2::text || ' agent ' || i || ' ✓', E'tab\there\nnewline \\ backslash ' || $2::text, 'model-x',
		        CASE WHEN i % 3 = 0 THEN 'paused' ELSE 'active' END,
		        now() - i * interval '1 second 1 microsecond', CASE WHEN i % 10 = 0 THEN now() END
		 FROM generate_series(1, {n}) i`,
		`WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents WHERE organization_id = $1)
		 INSERT INTO tasks (organization_id, agent_id, title, status, priority, result, started_at, agent_minutes)
		 SELECT $1, CASE WHEN i % 4 = 0 THEN NULL ELSE a.ids[1 + i % cardinality(a.ids)] END, $2::text || ' task ' || i,
		        CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'pending' END, 'high',
		        CASE WHEN i % 2 = 0 THEN jsonb_build_object('n', i, 'ok', true, 'm', $2::text) END, CASE WHEN i % 2 = 0 THEN now() END,
		        CASE WHEN i % 2 = 0 THEN i % 7 END
		 FROM a, generate_series(1, {n}) i`,
		`WITH t AS (SELECT array_agg(id ORDER BY id) ids FROM tasks WHERE organization_id = $1)
		 INSERT INTO messages (organization_id, task_id, role, content)
		 SELECT $1, CASE WHEN cardinality(t.ids) > 0 THEN t.ids[1 + i % cardinality(t.ids)] END, 'user',
		        $2::text || ' message ' || i || ' — ' || repeat('ü', i % 40)
		 FROM t, generate_series(1, {n}) i`,
		`INSERT INTO activity_logs (organization_id, action, object_type, object_id, details)
		 SELECT $1, 'task.created', 'task', gen_random_uuid(), jsonb_build_object('i', i, 's', 'x"y', 'm', $2::text)
		 FROM generate_series(1, {n}) i`,
		`WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents WHERE organization_id = $1)
		 INSERT INTO agent_sessions (organization_id, agent_id, tokens_used, ended_at)
		 SELECT $1, a.ids[1 + i % cardinality(a.ids)], i * 1000, CASE WHEN i % 2 = 0 THEN now() END
		 FROM a, generate_series(1, {n}) i`,
		`WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents WHERE organization_id = $1)
		 INSERT INTO schedules (organization_id, agent_id, cron, task_template, next_run_at)
		 SELECT $1, a.ids[1 + i % cardinality(a.ids)], '*/5 * * * *', jsonb_build_object('title', $2::text), now() + interval '5 minutes'
		 FROM a, generate_series(1, {n}) i`,
		`INSERT INTO idempotency_keys (organization_id, key, request_hash, status, response)
		 SELECT $1, $2::text || '-key-' || i, decode(md5(i::text), 'hex'), 201, convert_to('{"secret": "tg_' || $2::text || '"}', 'UTF8')
		 FROM generate_series(1, {n}) i`,
	}
	counts := []int{agents, tasks, messages, logs, sessions, schedules, keys}
	conn := tenancytest.Connect(t, dsn)
	for i, s := range stmts {
		args := []any{orgID}
		if strings.Contains(s, "$2") {
			args = append(args, marker)
		}
		_, err := conn.Exec(ctx, strings.ReplaceAll(s, "{n}", strconv.Itoa(counts[i])), args...)
		require.NoError(t, err, s)
	}
	require.NoError(t, conn.Close(ctx))
}

// rows is every row of the organization in dsn, by table and id, as JSON
// without organization_id: what must arrive unchanged under a new id.
func rows(t testing.TB, dsn, orgID string) map[string]map[string]string {
	t.Helper()
	ctx := testCtx(t)
	conn := tenancytest.Connect(t, dsn)
	defer conn.Close(ctx)
	_, err := conn.Exec(ctx, `SET TimeZone = 'UTC'`)
	require.NoError(t, err)
	out := map[string]map[string]string{}
	for _, tbl := range archive.Tables {
		r, err := conn.Query(ctx, `SELECT id::text, (to_jsonb(t) - 'organization_id')::text FROM `+tbl+` t WHERE organization_id = $1`, orgID)
		require.NoError(t, err)
		out[tbl] = map[string]string{}
		var k, v string
		_, err = pgx.ForEachRow(r, []any{&k, &v}, func() error { out[tbl][k] = v; return nil })
		require.NoError(t, err)
	}
	return out
}

// raw is the organization's rows in dsn exactly as stored, tuple ids and
// inserting transactions included, over every table with tenant rows: a
// row rewritten with the same values differs.
func raw(t testing.TB, dsn, orgID string) string {
	t.Helper()
	ctx := testCtx(t)
	conn := tenancytest.Connect(t, dsn)
	defer conn.Close(ctx)
	var out bytes.Buffer
	for _, tbl := range append(archive.Tables, "idempotency_keys") {
		out.WriteString(tbl + "\n")
		_, err := conn.PgConn().CopyTo(ctx, &out, `COPY (SELECT ctid, xmin, t.* FROM `+tbl+` t WHERE organization_id = '`+orgID+`' ORDER BY ctid) TO STDOUT`)
		require.NoError(t, err)
	}
	return out.String()
}

// total counts the rows of every organization in dsn, over every table
// with tenant rows.
func total(t testing.TB, dsn string) int {
	t.Helper()
	ctx := testCtx(t)
	conn := tenancytest.Connect(t, dsn)
	defer conn.Close(ctx)
	n := 0
	for _, tbl := range append(archive.Tables, "idempotency_keys") {
		var c int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl).Scan(&c))
		n += c
	}
	return n
}

// count counts the organization's rows in dsn per table, idempotency
// records included.
func count(t testing.TB, dsn, orgID string) map[string]int64 {
	t.Helper()
	ctx := testCtx(t)
	conn := tenancytest.Connect(t, dsn)
	defer conn.Close(ctx)
	out := map[string]int64{}
	for _, tbl := range append(archive.Tables, "idempotency_keys") {
		var c int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl+` WHERE organization_id = $1`, orgID).Scan(&c))
		out[tbl] = c
	}
	return out
}

// export exports o from conn into memory.
func export(t testing.TB, conn *pgx.Conn, o tenancy.Organization, opts archive.ExportOptions) ([]byte, archive.Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := archive.Export(testCtx(t), &buf, conn, o, opts)
	require.NoError(t, err)
	return buf.Bytes(), m
}

// entry is a file of an unpacked archive.
type entry struct {
	name string
	data []byte
}

// The seal that ends an archive: a zstd skippable frame with "TGA1" and
// the SHA-256 of every byte before it (see the package documentation).
const sealLen = 8 + 4 + 32

// sealed returns body with its seal.
func sealed(body []byte) []byte {
	sum := sha256.Sum256(body)
	out := bytes.Clone(body)
	out = binary.LittleEndian.AppendUint32(out, 0x184D2A54)
	out = binary.LittleEndian.AppendUint32(out, 4+32)
	out = append(out, "TGA1"...)
	return append(out, sum[:]...)
}

// unsealed returns the archive without its seal.
func unsealed(b []byte) []byte { return bytes.Clone(b[:len(b)-sealLen]) }

// unpack decompresses and untars an archive, without checking it.
func unpack(t testing.TB, b []byte) []entry {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(unsealed(b)))
	require.NoError(t, err)
	defer dec.Close()
	tr := tar.NewReader(dec)
	var out []entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, entry{hdr.Name, data})
	}
}

// pack makes a sealed archive of entries, as Export would frame them.
func pack(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data))}))
		_, err := tw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return sealed(buf.Bytes())
}

// editManifest repacks b with its manifest changed by edit.
func editManifest(t testing.TB, b []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	entries := unpack(t, b)
	var m map[string]any
	require.NoError(t, json.Unmarshal(entries[0].data, &m))
	edit(m)
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	entries[0].data = raw
	return pack(t, entries)
}
