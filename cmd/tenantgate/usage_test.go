package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// tgUsage is tg on a root that has `tenants usage` and `tenants advise`:
// built as run builds it, with the two commands added under tenants
// unless tenantsCmd registers them already. Once it does, tg will do.
func tgUsage(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &cli{v: config.New(), stdout: &out, stderr: &errOut}
	root := &cobra.Command{Use: "tenantgate", SilenceUsage: true, SilenceErrors: true}
	root.PersistentPreRunE = c.bindFlags
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&c.configFile, "config", "", "config file")
	c.flag(pf, "database_url", "catalog database URL")
	c.flag(pf, "log_level", "log level")
	tenants := c.tenantsCmd()
	registered := map[string]bool{}
	for _, sub := range tenants.Commands() {
		registered[sub.Name()] = true
	}
	for _, sub := range []*cobra.Command{c.tenantsUsageCmd(), c.tenantsAdviseCmd()} {
		if !registered[sub.Name()] {
			tenants.AddCommand(sub)
		}
	}
	root.AddCommand(tenants)
	usageErrors(root)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// TestTenantsUsageAndAdvise: one shared tenant hammers the shared database
// while the others idle: `tenants advise` names it with its share and the
// command that moves it out, and names the idle dedicated tenants too,
// moving nothing; `tenants usage` shows its totals and ranks it first.
func TestTenantsUsageAndAdvise(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	stop := background(t, "provisioner")
	defer stop()
	for _, c := range [][]string{{"noisy", "pro"}, {"quiet", "starter"}, {"sleepy", "free"}, {"vault", "enterprise"}, {"spare", "enterprise"}} {
		_, _, err := tg(t, "tenants", "create", "--slug", c[0], "--name", c[0], "--plan", c[1], "--wait")
		require.NoError(t, err)
	}

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	defer pool.Close()
	store := catalog.New(pool)
	// spare's plan was lowered, and its data left where it was.
	_, err = pool.Exec(ctx, `UPDATE organizations SET plan = 'pro' WHERE slug = 'spare'`)
	require.NoError(t, err)
	id := func(slug string) string {
		org, err := store.OrganizationBySlug(ctx, slug)
		require.NoError(t, err)
		return org.ID
	}
	noisy, quiet, vault := id("noisy"), id("quiet"), id("vault")

	usage := metering.NewStore(pool, nil)
	m := usage.NewMeter(metering.Config{})
	for range 500 {
		m.Record(noisy, metering.Usage{Requests: 1, DBTime: 3 * time.Second, RowsRead: 10, BytesSent: 1000})
	}
	for range 20 {
		m.Record(quiet, metering.Usage{Requests: 1, DBTime: 100 * time.Millisecond, RowsRead: 1})
	}
	m.Record(vault, metering.Usage{Requests: 1, DBTime: 10 * time.Millisecond})
	require.NoError(t, m.Flush(ctx))
	require.NoError(t, store.Charge(ctx, noisy, uuid.NewString(), 3, 1234))
	require.NoError(t, store.Charge(ctx, quiet, uuid.NewString(), 1, 10))
	// Storage as the provisioner measures it.
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	require.NoError(t, provisioner.NewUsageCollector(store, usage, metering.DefaultRetention, quietLog).Collect(ctx))

	// advise: the noisy neighbour, with its share and the command; the
	// idle dedicated tenants (move back, or review for enterprise).
	out, _, err := tgUsage(t, "tenants", "advise")
	require.NoError(t, err)
	require.Contains(t, out, "tenantgate tenants move noisy --to dedicated")
	require.Contains(t, out, "99.9%", "noisy's share of the shared database's time: 1500s of 1502s")
	require.Contains(t, out, "tenantgate tenants move spare --to shared")
	require.Contains(t, out, "review: tenantgate tenants show vault")
	require.NotContains(t, out, "quiet")
	require.NotContains(t, out, "sleepy")

	out, _, err = tgUsage(t, "tenants", "advise", "--since", "7d", "--output", "json")
	require.NoError(t, err)
	var advice struct {
		Since  time.Time
		Advice []struct {
			Slug, Kind, DatabaseName, Action, To, Reason, Command string
			DBTimeShare, Threshold                                float64
			DatabaseDBTime                                        time.Duration
			Usage                                                 metering.Usage
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &advice), out)
	bySlug := map[string]int{}
	for i, a := range advice.Advice {
		bySlug[a.Slug] = i
	}
	require.Len(t, bySlug, 3, out)
	n := advice.Advice[bySlug["noisy"]]
	require.Equal(t, "move", n.Action)
	require.Equal(t, tenancy.KindDedicated, n.To)
	require.Equal(t, tenancy.KindShared, n.Kind)
	require.Equal(t, "tenantgate tenants move noisy --to dedicated", n.Command)
	require.InDelta(t, 1500.0/1502, n.DBTimeShare, 1e-9)
	require.Equal(t, 0.2, n.Threshold)
	require.Equal(t, 1500*time.Second, n.Usage.DBTime)
	require.Equal(t, 1502*time.Second, n.DatabaseDBTime)
	require.Contains(t, n.Reason, "99.9% of the database time of shared database")
	v := advice.Advice[bySlug["vault"]]
	require.Equal(t, "review", v.Action)
	require.Empty(t, v.Command, "enterprise stays dedicated")
	s := advice.Advice[bySlug["spare"]]
	require.Equal(t, "tenantgate tenants move spare --to shared", s.Command)

	out, _, err = tgUsage(t, "tenants", "advise", "--share", "0.999")
	require.NoError(t, err)
	require.NotContains(t, out, "noisy", "under a higher threshold")

	out, _, err = tg(t, "tenants", "show", "noisy", "--output", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"placement": "shared"`, "advise moves nothing")
	var moves int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE kind = 'move'`).Scan(&moves))
	require.Zero(t, moves, "and queues no move")

	// usage SLUG: the tenant's totals.
	out, _, err = tgUsage(t, "tenants", "usage", "noisy", "--output", "json")
	require.NoError(t, err)
	var one struct {
		Since            time.Time
		Slug, Plan, Kind string
		Usage            metering.Usage
		Storage          metering.StorageFigure
		Tokens           int64
	}
	require.NoError(t, json.Unmarshal([]byte(out), &one), out)
	require.Equal(t, "noisy", one.Slug)
	require.Equal(t, tenancy.KindShared, one.Kind)
	require.Equal(t, metering.Usage{Requests: 500, DBTime: 1500 * time.Second, RowsRead: 5000, BytesSent: 500_000}, one.Usage)
	require.Equal(t, int64(1234), one.Tokens)
	require.False(t, one.Storage.MeasuredAt.IsZero(), "measured by the collector")
	require.WithinDuration(t, time.Now().Add(-24*time.Hour), one.Since, time.Minute, "the default period is a day")

	out, _, err = tgUsage(t, "tenants", "usage", "vault", "--since", "2d", "--output", "json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(out), &one), out)
	require.Positive(t, one.Storage.Bytes, "a dedicated database's size")

	out, _, err = tgUsage(t, "tenants", "usage", "noisy")
	require.NoError(t, err)
	require.Regexp(t, `REQUESTS\s+500\n`, out)
	require.Regexp(t, `DB TIME\s+25m0s\n`, out)
	require.Regexp(t, `TOKENS\s+1234\n`, out)
	require.Contains(t, out, "(estimate")

	// The top tenants.
	out, _, err = tgUsage(t, "tenants", "usage", "--top", "1", "--by", "requests", "--output", "json")
	require.NoError(t, err)
	var top struct {
		By      string
		Tenants []struct {
			Slug  string
			Usage metering.Usage
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &top), out)
	require.Equal(t, "requests", top.By)
	require.Len(t, top.Tenants, 1)
	require.Equal(t, "noisy", top.Tenants[0].Slug)
	require.Equal(t, int64(500), top.Tenants[0].Usage.Requests)

	out, _, err = tgUsage(t, "tenants", "usage", "--top", "2", "--by", "tokens")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.True(t, strings.HasPrefix(lines[1], "noisy "), out)
	require.True(t, strings.HasPrefix(lines[2], "quiet "), out)

	out, _, err = tgUsage(t, "tenants", "usage", "--by", "storage")
	require.NoError(t, err)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 6, "every tenant, at most 10, without --top: %s", out)
	require.True(t, strings.HasPrefix(strings.Split(out, "\n")[1], "spare ") || strings.HasPrefix(strings.Split(out, "\n")[1], "vault "),
		"a dedicated database is larger than any share of the (empty) shared one: %s", out)

	_, _, err = tgUsage(t, "tenants", "usage", "nobody")
	require.ErrorContains(t, err, "not found")
	require.Equal(t, 1, report(&strings.Builder{}, err))
}

// TestTenantsUsageFlags: command-line mistakes of usage and advise exit 2
// before anything is read.
func TestTenantsUsageFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"tenants", "usage", "--by", "weight"},
		{"tenants", "usage", "--top", "0"},
		{"tenants", "usage", "--top", "many"},
		{"tenants", "usage", "acme", "--top", "3"},
		{"tenants", "usage", "acme", "--by", "requests"},
		{"tenants", "usage", "--since", "yesterday"},
		{"tenants", "usage", "--since", "0d"},
		{"tenants", "usage", "--since", "-3h"},
		{"tenants", "usage", "--output", "yaml"},
		{"tenants", "usage", "a", "b"},
		{"tenants", "advise", "--share", "1.5"},
		{"tenants", "advise", "--share", "0"},
		{"tenants", "advise", "--share", "lots"},
		{"tenants", "advise", "--idle-floor", "-1m"},
		{"tenants", "advise", "--idle-floor", "soon"},
		{"tenants", "advise", "--since", "7days"},
		{"tenants", "advise", "--output", "xml"},
		{"tenants", "advise", "extra"},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			t.Parallel()
			stdout, _, err := tgUsage(t, args...)
			require.Error(t, err)
			var msg strings.Builder
			require.Equal(t, 2, report(&msg, err), "%v: %v", args, err)
			require.Empty(t, stdout)
		})
	}
}

// TestParseSince: days or any positive Go duration.
func TestParseSince(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "24h": 24 * time.Hour, " 90m ": 90 * time.Minute, "1d": 24 * time.Hour} {
		got, err := parseSince("--since", in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "0d", "-1d", "1.5d", "7days", "0s", "-1h", "week"} {
		_, err := parseSince("--since", in)
		require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err), in)
	}
}
