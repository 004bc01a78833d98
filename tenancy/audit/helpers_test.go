package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rolePrefix starts the roles these tests make. Roles belong to the
// server, so each test gets its own: altering the shared test application
// role (BYPASSRLS…) would break other packages' tests running meanwhile.
// The base-36 time after it lets a sweep tell a crashed run's roles.
const rolePrefix = "tgtaudit_"

// auditor is shared by the package's tests, as by a process: its cache of
// expected fingerprints is filled once per version. Its scratch databases
// are named like tenancytest's, so a crashed run's are swept with them.
var auditor = New(Config{ScratchPrefix: "tgt" + strconv.FormatInt(time.Now().Unix(), 36) + "_auditscratch_"})

// fixture is one test's databases and roles.
type fixture struct {
	env     *tenancytest.Env
	appRole string
	// ownerRole is a name for a role to own databases, for the tests that
	// need one; nobody creates it otherwise.
	ownerRole string
}

// setup gives t an env whose application role is its own.
func setup(t testing.TB) *fixture {
	t.Helper()
	sweepRoles(t)
	// Registered before the env, so it runs after the env's databases,
	// which hold the role's grants, are dropped.
	role, owner := newRole(t, "app"), newRole(t, "owner")
	env := tenancytest.NewEnv(t)
	env.AppRole = role
	return &fixture{env: env, appRole: role, ownerRole: owner}
}

// newRole names a fresh role, dropped when t ends (after any cleanup
// registered later). It is created by whoever first needs it.
func newRole(t testing.TB, what string) string {
	name := fmt.Sprintf("%s%s_%s_%s", rolePrefix, strconv.FormatInt(time.Now().Unix(), 36), randomHex(4), what)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, tenancytest.ServerURL())
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return name
}

var sweptRoles sync.Once

// sweepRoles drops this package's roles older than an hour: a crashed
// run's. Best effort: a role that still holds grants somewhere stays.
func sweepRoles(t testing.TB) {
	sweptRoles.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn := tenancytest.Connect(t, tenancytest.ServerURL())
		rows, err := conn.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, rolePrefix+"%")
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		cutoff := time.Now().Add(-time.Hour).Unix()
		for _, n := range names {
			stamp, _, _ := strings.Cut(strings.TrimPrefix(n, rolePrefix), "_")
			if created, err := strconv.ParseInt(stamp, 36, 64); err == nil && created < cutoff {
				conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
			}
		}
	})
}

// database creates a migrated tenant database granted to f's application
// role, as init makes the shared one, and returns its owner DSN.
func (f *fixture) database(t testing.TB, suffix string) string {
	t.Helper()
	return f.env.NewTenantDatabase(t, suffix)
}

// exec runs statements on dsn as its owner; %[1]s in them is the
// application role's quoted name.
func (f *fixture) exec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	conn := tenancytest.Connect(t, dsn)
	for _, s := range stmts {
		s = strings.ReplaceAll(s, "%[1]s", pgx.Identifier{f.appRole}.Sanitize())
		_, err := conn.Exec(context.Background(), s)
		require.NoError(t, err, s)
	}
}

func (f *fixture) audit(t testing.TB, dsn string, version uint) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := auditor.Audit(ctx, dsn, f.appRole, version)
	require.NoError(t, err)
	return r
}

// newestVersion is the newest embedded tenant migration.
func newestVersion(t testing.TB) uint {
	vs, err := schema.Versions(auditor.cfg.Migrations, auditor.cfg.Dir)
	require.NoError(t, err)
	return vs[len(vs)-1]
}

func messages(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Message)
	}
	return out
}
