package provisioner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// BenchmarkEnterpriseCreate (issue 13, item 2): what an operator waits for
// a new enterprise tenant, against what PostgreSQL needs to make its
// database. In the same run, in alternated rounds:
//
//   - floor: a bare `CREATE DATABASE x TEMPLATE <the provisioner's
//     migrated template>` over an open superuser connection;
//   - cli: the real binary's `tenants create --plan enterprise --wait` as a
//     process of its own, from its start to its exit, against the real
//     binary's `provisioner` running in another: the job path (enqueue,
//     the worker's notification, create from the template, grant, verify,
//     ready, audit, the follower's notification);
//   - c10: 10 such processes started at once, the wall time of the whole
//     batch ÷ 10;
//   - cli-shared: the same command for a shared plan (no job, no
//     database): what the command costs by itself;
//   - psql: `psql -c 'CREATE DATABASE … TEMPLATE …'` as a process, the
//     floor an operator would time by hand.
//
// It reports the medians, cli ÷ floor (target ≤ 2) and c10 ÷ floor (target
// ≤ 1.5), and where a single create's time went: job-ms is the job in the
// catalog from its insert to its end, step-<name>-ms each step's median
// from the provisioner's debug log.
//
//	go test -run '^$' -bench EnterpriseCreate -benchtime 1x ./provisioner/
func BenchmarkEnterpriseCreate(b *testing.B) {
	const rounds, concurrent = 9, 10
	f := newFleet(b)
	bin := buildCommand(b)
	env := commandEnv(f)
	provisioner := startCommand(b, bin, append(env, "TENANTGATE_LOG_LEVEL=debug"), "provisioner")
	defer provisioner.stop()

	n := 0
	slug := func() string { n++; return fmt.Sprintf("bench-%d", n) }
	var singleJobs []string
	create := func() time.Duration {
		s := slug()
		start := time.Now()
		out, err := command(bin, env, "tenants", "create", "--slug", s, "--name", s, "--plan", "enterprise", "--wait").CombinedOutput()
		took := time.Since(start)
		require.NoError(b, err, "%s", out)
		m := succeeded.FindStringSubmatch(string(out))
		require.NotNil(b, m, "--wait saw the job end: %s", out)
		singleJobs = append(singleJobs, m[1])
		return took
	}
	createMany := func() time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for range concurrent {
			s := slug()
			wg.Go(func() {
				out, err := command(bin, env, "tenants", "create", "--slug", s, "--name", s, "--plan", "enterprise", "--wait").CombinedOutput()
				if err != nil || !succeeded.Match(out) {
					b.Errorf("tenants create %s: %v\n%s", s, err, out)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	createShared := func() time.Duration {
		s := slug()
		start := time.Now()
		out, err := command(bin, env, "tenants", "create", "--slug", s, "--name", s, "--plan", "pro").CombinedOutput()
		took := time.Since(start)
		require.NoError(b, err, "%s", out)
		return took
	}
	server := tenancytest.Connect(b, f.env.ServerURL)
	template := pgx.Identifier{f.cfg.TemplateName()}.Sanitize()
	floor := func() time.Duration {
		name := pgx.Identifier{f.env.DedicatedPrefix + "floor_" + slug()}.Sanitize()
		start := time.Now()
		_, err := server.Exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+template)
		took := time.Since(start)
		require.NoError(b, err)
		return took
	}
	psql, psqlErr := exec.LookPath("psql")
	byPsql := func() time.Duration {
		name := pgx.Identifier{f.env.DedicatedPrefix + "psql_" + slug()}.Sanitize()
		start := time.Now()
		out, err := exec.Command(psql, "-X", "-q", "-d", f.env.ServerURL, "-c", "CREATE DATABASE "+name+" TEMPLATE "+template).CombinedOutput()
		took := time.Since(start)
		require.NoError(b, err, "%s", out)
		return took
	}

	// The first creation makes the server's template; the provisioner
	// does that once per server, not per tenant.
	create()
	singleJobs = nil
	var floors, clis, manys, shareds, psqls []time.Duration
	for b.Loop() {
		for i := range rounds {
			steps := []func(){
				func() { floors = append(floors, floor()) },
				func() { clis = append(clis, create()) },
				func() { manys = append(manys, createMany()/concurrent) },
				func() { shareds = append(shareds, createShared()) },
			}
			if psqlErr == nil {
				steps = append(steps, func() { psqls = append(psqls, byPsql()) })
			}
			// Each round starts with another, so none always meets a
			// server still busy with the one before.
			for j := range steps {
				steps[(i+j)%len(steps)]()
			}
		}
	}
	fl, cli, many := median(floors), median(clis), median(manys)
	b.ReportMetric(ms(fl), "floor-ms")
	b.ReportMetric(ms(cli), "cli-ms")
	b.ReportMetric(ms(many), "c10-ms/tenant")
	b.ReportMetric(float64(cli)/float64(fl), "cli/floor")
	b.ReportMetric(float64(many)/float64(fl), "c10/floor")
	b.ReportMetric(ms(slices.Max(clis)), "cli-max-ms")
	b.ReportMetric(ms(median(shareds)), "cli-shared-ms")
	if psqlErr == nil {
		b.ReportMetric(ms(median(psqls)), "psql-ms")
	}
	b.Logf("floor %v\ncli %v\nc10 per tenant %v\ncli-shared %v\npsql %v\n(figures: the medians of %d rounds)",
		floors, clis, manys, shareds, psqls, rounds)

	// Where a single create's time went.
	catalogConn := tenancytest.Connect(b, f.env.CatalogURL)
	var jobs []time.Duration
	for _, id := range singleJobs {
		var secs float64
		require.NoError(b, catalogConn.QueryRow(context.Background(),
			`SELECT extract(epoch FROM finished_at - created_at)::float8 FROM jobs WHERE id = $1`, id).Scan(&secs))
		jobs = append(jobs, time.Duration(secs*float64(time.Second)))
	}
	b.ReportMetric(ms(median(jobs)), "job-ms")
	provisioner.stop()
	for step, ds := range stepTimes(b, provisioner.output(), singleJobs) {
		b.ReportMetric(ms(median(ds)), "step-"+step+"-ms")
	}
}

// succeeded finds the job's id in `--wait`'s last line.
var succeeded = regexp.MustCompile(`job ([0-9a-f-]{36}) succeeded`)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// stepTimes reads the worker's debug log ("job step" at each step's start,
// "job succeeded" at the end, both with ms since the job started) and
// returns, by step, how long it took in each of jobs.
func stepTimes(b *testing.B, log string, jobs []string) map[string][]time.Duration {
	type mark struct {
		step string
		ms   int64
	}
	marks := map[string][]mark{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Msg, Job, Step string
			MS             int64 `json:"ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || !slices.Contains(jobs, line.Job) {
			continue
		}
		switch line.Msg {
		case "job step":
			marks[line.Job] = append(marks[line.Job], mark{line.Step, line.MS})
		case "job succeeded":
			marks[line.Job] = append(marks[line.Job], mark{"", line.MS})
		}
	}
	require.NoError(b, sc.Err())
	times := map[string][]time.Duration{}
	for _, ms := range marks {
		for i := 0; i+1 < len(ms); i++ {
			times[ms[i].step] = append(times[ms[i].step], time.Duration(ms[i+1].ms-ms[i].ms)*time.Millisecond)
		}
	}
	return times
}

// buildCommand builds the tenantgate binary, as `make build` does, into a
// directory of the benchmark's.
func buildCommand(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "tenantgate")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tenantgate/tenantgate/cmd/tenantgate").CombinedOutput()
	require.NoError(b, err, "go build: %s", out)
	return bin
}

// commandEnv is the environment that points the command at the fleet's
// databases, without the caller's own TENANTGATE_ settings.
func commandEnv(f *fleet) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTGATE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"TENANTGATE_DATABASE_URL="+f.env.CatalogURL,
		"TENANTGATE_SHARED_DATABASE_URL="+f.env.SharedURL,
		"TENANTGATE_DEDICATED_DATABASE_PREFIX="+f.env.DedicatedPrefix,
		"TENANTGATE_APP_ROLE="+f.env.AppRole,
		"TENANTGATE_LOG_LEVEL=warn",
	)
}

func command(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return cmd
}

// service is a command running in the background.
type service struct {
	stop   func()
	output func() string // what it wrote; read it after stop
}

// startCommand runs the binary's provisioner (or another command that
// serves ops where the provisioner does) as startService does.
func startCommand(b *testing.B, bin string, env []string, args ...string) service {
	return startService(b, bin, env, "TENANTGATE_PROVISIONER_ADMIN_ADDR", args...)
}

// startService runs the binary with args (a service, listening for ops on
// a free port, set by the variable opsKey) until stopped: then it is asked
// to stop as an operator would (SIGTERM) and waited for.
func startService(b *testing.B, bin string, env []string, opsKey string, args ...string) service {
	addr := freeAddr(b)
	cmd := command(bin, append(env, opsKey+"="+addr), args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(b, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				require.NoError(b, err, "%s: %s", args, out.String())
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-exited
				b.Errorf("%s did not stop on SIGTERM: %s", args, out.String())
			}
		})
	}
	ready := func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !assertEventually(ready) {
		stop()
		b.Fatalf("%s is not ready after a minute", args)
	}
	return service{stop: stop, output: out.String}
}

// assertEventually polls ready for up to a minute.
func assertEventually(ready func() bool) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ready() {
			return true
		}
	}
	return false
}

// freeAddr is a loopback address nobody listens on now.
func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	return ln.Addr().String()
}
