package tenancytest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// clusterPrefix starts the directory of every private cluster, under the
// system's temporary directory.
const clusterPrefix = "tgpg-"

// Cluster is a PostgreSQL server of one test's own, on a free port of
// 127.0.0.1 with trust authentication and superuser "root", so the test can
// stop and restart it without touching the machine's server. Its data, Unix
// socket and log live in one temporary directory. NewCluster registers a
// cleanup that stops it and removes the directory; a run killed before its
// cleanups leaves a server running, which the first NewCluster of a later
// run stops once it is an hour old. Methods that can fail fail the test,
// so call them from the test's goroutine.
type Cluster struct {
	// URL is a superuser DSN of the cluster's "postgres" database.
	URL string
	// Port is the cluster's TCP port; it keeps it across restarts.
	Port int

	t   testing.TB
	bin string // the directory of initdb and pg_ctl
	dir string
	// owner is the OS user the server runs as: "postgres" when the tests
	// run as root, since initdb and postgres refuse to run as root.
	owner *user.User

	mu      sync.Mutex
	running bool
	frozen  []int // the processes Freeze stopped
}

// NewCluster creates and starts a private cluster for t. A missing
// PostgreSQL installation fails the test.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	sweepClustersOnce(t)
	bin, err := postgresBinDir()
	if err != nil {
		t.Fatalf("tenancytest: private cluster: %v", err)
	}
	c := &Cluster{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if c.owner, err = user.Lookup("postgres"); err != nil {
			t.Fatalf("tenancytest: private cluster: running as root needs a postgres OS user to run the server as: %v", err)
		}
	}
	if c.dir, err = os.MkdirTemp("", clusterPrefix); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.destroy)
	if err := c.chown(c.dir); err != nil {
		t.Fatal(err)
	}
	if out, err := c.pg("initdb", "-D", c.data(), "-U", "root", "-A", "trust", "--no-sync", "--no-locale", "-E", "UTF8"); err != nil {
		t.Fatalf("tenancytest: initdb: %v\n%s", err, out)
	}
	// A free port may be taken between the probe and the server's bind:
	// try another one then.
	for attempt := 1; ; attempt++ {
		c.Port = freePort(t)
		err := c.start()
		if err == nil {
			break
		}
		if c.running || attempt == 3 { // it started but does not answer: no port problem
			t.Fatalf("tenancytest: start private cluster: %v", err)
		}
	}
	c.URL = fmt.Sprintf("postgres://root@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	return c
}

// DatabaseURL returns a superuser DSN of database name on the cluster.
func (c *Cluster) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://root@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// Stop shuts the server down (fast mode: sessions are ended, as in a
// server's planned shutdown) and returns when it no longer listens.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	c.thawLocked()
	if out, err := c.pg("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		c.t.Fatalf("tenancytest: stop private cluster: %v\n%s", err, out)
	}
	c.running = false
}

// Start starts a stopped server again on the same port, with its data,
// and returns when it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if err := c.start(); err != nil {
		c.t.Fatalf("tenancytest: restart private cluster: %v", err)
	}
}

// Restart stops the server and starts it again.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Freeze suspends the server and all its processes (SIGSTOP): it still
// accepts TCP connections, into the kernel's backlog, but answers nothing,
// like a server that hangs or a network that drops packets. Thaw resumes it.
func (c *Cluster) Freeze() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running || c.frozen != nil {
		return
	}
	pids, err := c.processes()
	if err != nil {
		c.t.Fatalf("tenancytest: freeze private cluster: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err == nil {
			c.frozen = append(c.frozen, pid)
		}
	}
}

// Thaw resumes a server Freeze suspended.
func (c *Cluster) Thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.thawLocked()
}

func (c *Cluster) thawLocked() {
	for _, pid := range c.frozen {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	c.frozen = nil
}

// processes are the postmaster's id (postmaster.pid) and its children's.
func (c *Cluster) processes() ([]int, error) {
	raw, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	pids := []int{postmaster}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		stat, err := os.ReadFile(path)
		if err != nil {
			continue // it ended meanwhile
		}
		// pid (comm) state ppid …: comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(postmaster) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// start runs the server; the caller holds c.mu or owns c alone.
func (c *Cluster) start() error {
	opts := strings.Join([]string{
		"-p", strconv.Itoa(c.Port), "-k", c.dir, "-c", "listen_addresses=127.0.0.1",
		// A throwaway server: durability is not worth its cost here.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB", "-c", "max_connections=200",
	}, " ")
	out, err := c.pg("pg_ctl", "-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return fmt.Errorf("pg_ctl start on port %d: %v\n%s\n%s", c.Port, err, out, tail(log, 2000))
	}
	c.running = true
	return c.ping()
}

// ping checks the started server takes a connection from this process.
func (c *Cluster) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://root@127.0.0.1:%d/postgres?sslmode=disable", c.Port))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// destroy stops the server at once, whatever it is doing, and removes its
// directory.
func (c *Cluster) destroy() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.thawLocked()
	if c.running {
		if out, err := c.pg("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
			c.t.Errorf("tenancytest: stop private cluster: %v\n%s", err, out)
		}
		c.running = false
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Errorf("tenancytest: remove private cluster: %v", err)
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// pg runs one of the server's programs as the cluster's owner.
func (c *Cluster) pg(program string, args ...string) (string, error) {
	return runAs(c.owner, filepath.Join(c.bin, program), args...)
}

func (c *Cluster) chown(path string) error {
	if c.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.owner.Uid)
	gid, _ := strconv.Atoi(c.owner.Gid)
	return os.Chown(path, uid, gid)
}

// runAs runs program, as owner when it is set (runuser, since we are root),
// bounded in time.
func runAs(owner *user.User, program string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if owner != nil {
		args = append([]string{"-u", owner.Username, "--", program}, args...)
		program = "runuser"
	}
	cmd := exec.CommandContext(ctx, program, args...)
	// pg_ctl's server inherits the command's output: without a file of its
	// own (-l) it would keep our pipe open and Output would never return.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	// The server must not run in the directory of the test, which its
	// owner may not be allowed to enter.
	cmd.Dir = os.TempDir()
	err := cmd.Run()
	return out.String(), err
}

// postgresBinDir finds initdb and pg_ctl: TENANTGATE_TEST_PG_BINDIR, else
// the newest /usr/lib/postgresql/*/bin (Debian and Ubuntu), else the PATH.
func postgresBinDir() (string, error) {
	if dir := os.Getenv("TENANTGATE_TEST_PG_BINDIR"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no pg_ctl in /usr/lib/postgresql/*/bin or the PATH (set TENANTGATE_TEST_PG_BINDIR)")
}

// majorOf is the version in /usr/lib/postgresql/<version>/bin.
func majorOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

var sweepClusters sync.Once

// sweepClustersOnce stops and removes private clusters older than an hour:
// leftovers of test runs killed before their cleanups ran (their servers
// outlive them). Younger ones may belong to a run going on now.
func sweepClustersOnce(t testing.TB) {
	sweepClusters.Do(func() {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterPrefix+"*"))
		var owner *user.User
		if os.Geteuid() == 0 {
			owner, _ = user.Lookup("postgres")
		}
		bin, err := postgresBinDir()
		if err != nil {
			return // NewCluster reports it
		}
		for _, d := range dirs {
			info, err := os.Stat(d)
			if err != nil || !info.IsDir() || time.Since(info.ModTime()) < time.Hour {
				continue
			}
			if _, err := os.Stat(filepath.Join(d, "data", "postmaster.pid")); err == nil {
				_, _ = runAs(owner, filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(d, "data"), "-m", "immediate", "-w", "stop")
			}
			if err := os.RemoveAll(d); err != nil {
				t.Logf("tenancytest: remove stale private cluster %s: %v", d, err)
			}
		}
	})
}
