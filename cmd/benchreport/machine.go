package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPU      string
	Cores    int
	Memory   string
	OS       string
	Go       string
	Postgres string
	Redis    string
}

// The servers the benchmarks used: the tests' own variables and defaults
// (tenancy/tenancytest), read here again so cmd/benchreport needs nothing
// from the test helpers.
const (
	defaultPostgres = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"
	defaultRedis    = "redis://127.0.0.1:6379/0"
)

func describeMachine(ctx context.Context, getenv func(string) string) Machine {
	m := Machine{
		CPU:    cpuModel("/proc/cpuinfo"),
		Cores:  runtime.NumCPU(),
		Memory: memTotal("/proc/meminfo"),
		OS:     runtime.GOOS + "/" + runtime.GOARCH + ", " + kernel(),
		Go:     runtime.Version(),
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m.Postgres = postgresVersion(ctx, orDefault(getenv("TENANTGATE_TEST_DATABASE_URL"), defaultPostgres))
	m.Redis = redisVersion(ctx, orDefault(getenv("TENANTGATE_TEST_REDIS_URL"), defaultRedis))
	return m
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(path string) string {
	return firstMatch(path, func(line string) (string, bool) {
		k, v, ok := strings.Cut(line, ":")
		return strings.TrimSpace(v), ok && strings.TrimSpace(k) == "model name"
	})
}

// memTotal is MemTotal of /proc/meminfo in GiB.
func memTotal(path string) string {
	return firstMatch(path, func(line string) (string, bool) {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "MemTotal:" {
			return "", false
		}
		kib, err := strconv.ParseFloat(fields[1], 64)
		return fmt.Sprintf("%.1f GiB", kib/(1<<20)), err == nil
	})
}

// firstMatch is what match makes of the first line of the file at path it
// accepts; "unknown" when none does or the file cannot be read.
func firstMatch(path string, match func(line string) (string, bool)) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := match(s.Text()); ok {
			return v
		}
	}
	return "unknown"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "kernel unknown"
	}
	return "kernel " + strings.TrimSpace(string(b))
}

func postgresVersion(ctx context.Context, dsn string) string {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version, maxConns, buffers, fsync, syncCommit string
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('max_connections'),
		current_setting('shared_buffers'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&version, &maxConns, &buffers, &fsync, &syncCommit)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return fmt.Sprintf("%s on the same host: max_connections %s, shared_buffers %s, fsync %s, synchronous_commit %s",
		version, maxConns, buffers, fsync, syncCommit)
}

func redisVersion(ctx context.Context, url string) string {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	opts.MaxRetries, opts.DialTimeout = -1, 2*time.Second // one try: this is only a label
	c := redis.NewClient(opts)
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v + " on the same host"
		}
	}
	return "unknown"
}
