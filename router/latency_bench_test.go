package router

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// pacedWorkers is how many requests a paced load client keeps in flight at
// most: far more than a half-loaded server keeps busy (a few), so the
// sender does not wait for a free one unless the server stalls.
const pacedWorkers = 64

// BenchmarkAddedLatency measures what the gateway adds to a request's
// latency at half load: GET /api/agents (20 agents, session JWT) through
// the gateway, through the bare handler (the same store call on the same
// pool) and through the plain handler (the same rows' query on a
// superuser's pool of its own; see BenchmarkLoadGatewayVsBare), each sent
// at half the plain handler's own maximum rate (measured first, closed
// loop, with the gateway's, which says how loaded the gateway is at that
// rate). The load comes from cmd/loadgen, a process of its own: requests
// leave on a fixed schedule whatever the earlier ones did, and a latency
// counts from when its request was due, so a stall shows in the figures
// instead of slowing the sender.
//
// The measurement is five independent runs, each of three rounds in which
// the three contenders take turns, each starting with another. It reports
// the p50 and p99 of each over all runs; the gateway's minus the bare
// handler's (issue 7: p99 added ≤ 5 ms) and minus the plain handler's
// (issue 13: p50 added ≤ 0.3 ms; p99 added ≤ 2 ms in 5 of 5 runs: the
// worst run's figure and how many met it). For the worst run it reports
// what could stall a request in this process, in the gateway's rounds and
// in the plain handler's: garbage-collection pauses, Go's scheduling
// latency, connection-pool waits, the gateway's own Redis calls, and a
// Redis PING and a catalog SELECT 1 probed every 10 ms; and how late the
// load process's own schedule sent requests (a delay of the client's that
// is in the latencies). For all runs it reports how busy the machine's CPUs
// were and how much of them the load process took.
//
//	go test -run '^$' -bench AddedLatency -benchtime 1x ./router/
func BenchmarkAddedLatency(b *testing.B) {
	const (
		rounds    = 3 // per run: each contender once in each place
		roundLen  = 1200 * time.Millisecond
		p99Target = 2 * time.Millisecond // issue 13
	)
	r := benchRig(b, "latency", true)

	for _, kind := range []string{"shared", "dedicated"} {
		b.Run(kind+"-list", func(b *testing.B) {
			type contender = latencyContender
			gw := &contender{name: "gateway", pool: r.pool("gateway", kind),
				t: target{url: "http://" + r.gateway + "/api/agents", auth: "Bearer " + r.tenants[kind].token}}
			br := &contender{name: "bare", pool: r.pool("bare", kind), t: target{url: "http://" + r.bare + "/bare/" + kind}}
			pl := &contender{name: "plain", pool: r.pool("plain", kind), t: target{url: "http://" + r.plain + "/plain/" + kind}}
			cs := []*contender{gw, br, pl}
			var plainMax, gatewayMax, rate float64
			for b.Loop() {
				// Both maxima, plain-gateway-gateway-plain so that neither
				// always runs first.
				maxRate := func(c *contender) float64 { return r.load.closed(b, c.t, loadRound).rate() / 2 }
				plainMax = maxRate(pl)
				gatewayMax = maxRate(gw) + maxRate(gw)
				plainMax += maxRate(pl)
				rate = plainMax / 2
				for _, c := range cs { // warm up at the rate before measuring
					r.load.paced(b, c.t, rate, time.Second)
				}
				for run := range latencyRuns {
					for round := range rounds {
						for i := range cs {
							c := cs[(round+i)%len(cs)]
							sp := r.meters.start(c.pool)
							res := r.load.paced(b, c.t, rate, roundLen)
							c.st[run].add(sp.stop(res))
							c.lat[run] = append(c.lat[run], res.latencies()...)
							c.lag[run] = append(c.lag[run], res.sendLags()...)
						}
					}
				}
			}

			all := map[string][]time.Duration{}
			sums := map[string]stats{}
			for _, c := range cs {
				for run := range latencyRuns {
					all[c.name] = append(all[c.name], c.lat[run]...)
					s := sums[c.name]
					s.add(c.st[run])
					sums[c.name] = s
				}
			}
			for _, q := range []struct {
				name string
				q    float64
			}{{"p50", 0.50}, {"p99", 0.99}} {
				g, br, pl := percentile(all["gateway"], q.q), percentile(all["bare"], q.q), percentile(all["plain"], q.q)
				b.ReportMetric(ms(g), "gateway-"+q.name+"-ms")
				b.ReportMetric(ms(br), "bare-"+q.name+"-ms")
				b.ReportMetric(ms(pl), "plain-"+q.name+"-ms")
				b.ReportMetric(ms(g-br), "added-"+q.name+"-ms")
			}
			b.ReportMetric(ms(percentile(all["gateway"], 0.5)-percentile(all["plain"], 0.5)), "added-plain-p50-ms")
			b.ReportMetric(ms(percentile(all["gateway"], 0.99)-percentile(all["plain"], 0.99)), "added-plain-p99-pooled-ms")

			// Issue 13's p99, run by run.
			added := make([]time.Duration, latencyRuns)
			worst, best, met := 0, 0, 0
			for run := range latencyRuns {
				added[run] = percentile(gw.lat[run], 0.99) - percentile(pl.lat[run], 0.99)
				if added[run] > added[worst] {
					worst = run
				}
				if added[run] < added[best] {
					best = run
				}
				if added[run] <= p99Target {
					met++
				}
				logRun(b, kind, run, gw, pl)
			}
			b.ReportMetric(ms(added[worst]), "added-plain-p99-ms")
			b.ReportMetric(ms(added[best]), "added-plain-p99-best-ms")
			b.ReportMetric(float64(met), "p99-runs-met")
			b.ReportMetric(latencyRuns, "runs")
			b.ReportMetric(float64(worst+1), "worst-run")
			b.ReportMetric(ms(percentile(gw.lat[worst], 0.99)), "worst-gateway-p99-ms")
			b.ReportMetric(ms(percentile(pl.lat[worst], 0.99)), "worst-plain-p99-ms")
			reportStalls(b, "worst-gateway-", gw.st[worst])
			reportStalls(b, "worst-plain-", pl.st[worst])
			b.ReportMetric(ms(percentile(gw.lag[worst], 0.99)), "worst-gateway-send-lag-p99-ms")
			b.ReportMetric(ms(percentile(pl.lag[worst], 0.99)), "worst-plain-send-lag-p99-ms")
			b.ReportMetric(float64(gw.st[worst].redisCalls), "worst-gateway-redis-calls")

			for _, c := range cs {
				s := sums[c.name]
				b.ReportMetric(s.cpuBusy(), c.name+"-cpu-%")
				b.ReportMetric(s.gcPerSecond(), c.name+"-gc/s")
				b.ReportMetric(s.gcPauseMs(), c.name+"-gc-pause-ms")
				b.ReportMetric(s.share(s.client), c.name+"-client-cpu-%")
				b.ReportMetric(s.perRequest(s.server), c.name+"-server-us/req")
				b.ReportMetric(s.perRequest(s.postgres), c.name+"-postgres-us/req")
				b.ReportMetric(float64(s.poolAcquires), c.name+"-pool-acquires")
				b.ReportMetric(float64(s.poolWaits), c.name+"-pool-waits")
				b.ReportMetric(ms(s.poolWait)/float64(max(s.poolWaits, 1)), c.name+"-pool-wait-avg-ms")
			}
			b.ReportMetric(float64(pl.pool().MaxConns()), "pool-conns") // the gateway's and the plain handler's alike
			b.ReportMetric(plainMax, "plain-max-req/s")
			b.ReportMetric(gatewayMax, "gateway-max-req/s")
			b.ReportMetric(100*rate/gatewayMax, "gateway-load-%")
			b.ReportMetric(rate, "offered-req/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// latencyRuns is how many independent runs BenchmarkAddedLatency makes: issue 13
// asks for its p99 in 5 of 5.
const latencyRuns = 5

// latencyContender is one of BenchmarkAddedLatency's servers and what its
// rounds measured, run by run.
type latencyContender struct {
	name string
	t    target
	pool func() *pgxpool.Stat
	lat  [latencyRuns][]time.Duration
	lag  [latencyRuns][]time.Duration // how late the load process's schedule sent
	st   [latencyRuns]stats
}

// logRun logs one run's figures, the gateway's against the plain
// handler's, for whoever reads the benchmark's output.
func logRun(b *testing.B, kind string, run int, gw, pl *latencyContender) {
	g, p := gw.st[run], pl.st[run]
	q := func(lat []time.Duration, q float64) float64 { return ms(percentile(lat, q)) }
	b.Logf("%s run %d: p90 gateway %.2f ms, plain %.2f ms; p99 gateway %.2f ms, plain %.2f ms; "+
		"gateway vs plain rounds: GC pause %.2f vs %.2f ms/s (longest %.2f vs %.2f ms), scheduling p99 %.3f vs %.3f ms, "+
		"pool waits %d vs %d (%.2f vs %.2f ms), gateway Redis calls %d (longest %.2f ms), "+
		"Redis PING longest %.2f ms, catalog SELECT 1 longest %.2f ms, CPUs %.1f vs %.1f %% busy, "+
		"the load process's schedule late by %.2f vs %.2f ms (p99)",
		kind, run+1, q(gw.lat[run], 0.90), q(pl.lat[run], 0.90), q(gw.lat[run], 0.99), q(pl.lat[run], 0.99),
		g.gcPauseMs(), p.gcPauseMs(), ms(g.gcMax), ms(p.gcMax), ms(g.schedQuantile(0.99)), ms(p.schedQuantile(0.99)),
		g.poolWaits, p.poolWaits, ms(g.poolWait), ms(p.poolWait), g.redisCalls, ms(g.redisMax),
		ms(max(g.redisPingMax, p.redisPingMax)), ms(max(g.catalogPingMax, p.catalogPingMax)), g.cpuBusy(), p.cpuBusy(),
		q(gw.lag[run], 0.99), q(pl.lag[run], 0.99))
}

// reportStalls reports, under prefix, what could hold a request up in the
// spans s adds up.
func reportStalls(b *testing.B, prefix string, s stats) {
	b.ReportMetric(s.gcPauseMs(), prefix+"gc-pause-ms")
	b.ReportMetric(ms(s.gcMax), prefix+"gc-max-ms")
	b.ReportMetric(ms(s.schedQuantile(0.99)), prefix+"sched-p99-ms")
	b.ReportMetric(float64(s.poolWaits), prefix+"pool-waits")
	b.ReportMetric(ms(s.poolWait), prefix+"pool-wait-ms")
	b.ReportMetric(ms(s.poolWait)/float64(max(s.poolWaits, 1)), prefix+"pool-wait-avg-ms")
	b.ReportMetric(ms(s.redisMax), prefix+"redis-max-ms")
	b.ReportMetric(ms(s.redisPingMax), prefix+"redis-ping-max-ms")
	b.ReportMetric(ms(s.catalogPingMax), prefix+"catalog-ping-max-ms")
	b.ReportMetric(s.cpuBusy(), prefix+"cpu-%")
	b.ReportMetric(s.share(s.server), prefix+"server-cpu-%")
	b.ReportMetric(s.share(s.client), prefix+"client-cpu-%")
	b.ReportMetric(s.share(s.postgres), prefix+"postgres-cpu-%")
	b.ReportMetric(s.share(s.rest()), prefix+"rest-cpu-%")
}

// BenchmarkNoisyNeighbour: a quiet tenant on the pro plan sends GET
// /api/agents at half its rate limit (100 of 200 rps), alone, then while a
// noisy tenant on the same shared database sends ten times its own limit,
// which the gateway refuses beyond the limit with 429. Rounds alternate
// quiet and crowded; the quiet tenant's latencies of each kind of round are
// pooled. Both tenants' clients are cmd/loadgen processes of their own, as
// they would be in production: in this process their allocations would
// make the gateway collect garbage more often. It reports the quiet
// tenant's p99 in both and their ratio (target ≤ 1.10, issue 7), what the
// noisy tenant got, and, for each kind of round, how busy the machine's
// CPUs were and how often this process (the gateway) collected garbage.
// Two noisy tenants are tried: on the starter plan (50 rps, so 500 req/s)
// and on pro (200 rps, so 2,000 req/s).
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 1x ./router/
func BenchmarkNoisyNeighbour(b *testing.B) {
	const rounds, round = 10, 4 * time.Second
	plans := contractPlans()
	for plan, rps := range map[tenancy.Plan]int{tenancy.PlanStarter: 50, tenancy.PlanPro: 200} { // CONTRACT §2
		l := plans[plan]
		l.RPS = rps
		plans[plan] = l
	}
	bn := benchGateway(b, setupOptions{plans: plans})
	load := buildLoadgen(b)
	gateway := serveApp(b, bn.app)
	url := "http://" + gateway + "/api/agents"
	quiet := target{url: url, auth: "Bearer " + bn.benchTenant(b, "quiet", tenancy.PlanPro).token}
	quietRate := float64(plans[tenancy.PlanPro].RPS) / 2
	var m *meters // no Redis timing or probes: CPU and GC only

	for _, plan := range []tenancy.Plan{tenancy.PlanStarter, tenancy.PlanPro} {
		noisy := target{url: url, auth: "Bearer " + bn.benchTenant(b, "noisy-"+string(plan), plan).token,
			tolerate: http.StatusTooManyRequests}
		noisyRate := float64(plans[plan].RPS) * 10
		b.Run("noisy-"+string(plan), func(b *testing.B) {
			var alone, crowded []time.Duration
			var noisyOK, noisyRefused, noisyFailed int
			var aloneSt, crowdedSt stats
			for b.Loop() {
				load.paced(b, quiet, quietRate, time.Second) // warm up
				quietly := func() {
					sp := m.start(nil)
					r := load.paced(b, quiet, quietRate, round)
					aloneSt.add(sp.stop(r))
					alone = append(alone, r.latencies()...)
				}
				withNoise := func() {
					stop := load.start(b, noisy, "-mode", "paced", "-rate", strconv.FormatFloat(noisyRate, 'f', -1, 64),
						"-workers", strconv.Itoa(pacedWorkers), "-duration", "0")
					time.Sleep(500 * time.Millisecond) // the flood is on before the quiet tenant starts
					sp := m.start(nil)
					r := load.paced(b, quiet, quietRate, round)
					crowdedSt.add(sp.stop(r))
					n := stop()
					crowded = append(crowded, r.latencies()...)
					noisyOK += n.OK
					noisyRefused += n.Tolerated
					noisyFailed += n.Failed
				}
				for i := range rounds {
					if i%2 == 0 {
						quietly()
						withNoise()
					} else {
						withNoise()
						quietly()
					}
				}
			}
			a, c := percentile(alone, 0.99), percentile(crowded, 0.99)
			b.ReportMetric(ms(a), "quiet-p99-ms")
			b.ReportMetric(ms(c), "crowded-p99-ms")
			b.ReportMetric(float64(c)/float64(a), "p99-ratio")
			b.ReportMetric(ms(percentile(alone, 0.5)), "quiet-p50-ms")
			b.ReportMetric(ms(percentile(crowded, 0.5)), "crowded-p50-ms")
			b.ReportMetric(quietRate, "quiet-req/s")
			b.ReportMetric(noisyRate, "noisy-offered-req/s")
			b.ReportMetric(float64(noisyOK)/(float64(rounds)*(round+500*time.Millisecond).Seconds()), "noisy-served-req/s")
			b.ReportMetric(float64(noisyRefused)/float64(max(noisyOK+noisyRefused+noisyFailed, 1)), "noisy-429-share")
			b.ReportMetric(float64(noisyFailed), "noisy-errors")
			b.ReportMetric(aloneSt.cpuBusy(), "quiet-cpu-%")
			b.ReportMetric(crowdedSt.cpuBusy(), "crowded-cpu-%")
			b.ReportMetric(aloneSt.gcPerSecond(), "quiet-gc/s")
			b.ReportMetric(crowdedSt.gcPerSecond(), "crowded-gc/s")
			b.ReportMetric(aloneSt.gcPauseMs(), "quiet-gc-pause-ms")
			b.ReportMetric(crowdedSt.gcPauseMs(), "crowded-gc-pause-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// percentile is the q-quantile of lat (nearest rank), 0 when empty.
func percentile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rate is the load's answered requests per second, by its own clock.
func (r loadResult) rate() float64 {
	if r.Seconds == 0 {
		return 0
	}
	return float64(r.OK) / r.Seconds
}

// meters measure, from this process (the servers under test), what can
// hold a request up or take CPU from it, over the spans between a round's
// start and stop. A nil *meters measures CPU and garbage collection only.
type meters struct {
	redis  *redisTimer // the gateway's own Redis calls; nil: not timed
	probes *probes     // Redis and catalog round trips; nil: not probed
	// backends lists the PostgreSQL backends serving the benchmark's
	// servers, whose CPU time is PostgreSQL's share; nil: not measured.
	backends func() []int
}

// span is one round being measured.
type span struct {
	m           *meters
	pool        func() *pgxpool.Stat
	at          time.Time
	busy, total uint64
	cpu         time.Duration
	mem         runtime.MemStats
	sched       []uint64
	pool0       poolCounts
	redisCalls  int64
	processes   map[int]uint64 // CPU ticks of the backends and Redis servers
}

// start begins a span; pool, if not nil, is the pool the round's
// requests use.
func (m *meters) start(pool func() *pgxpool.Stat) *span {
	s := &span{m: m, pool: pool, pool0: readPool(pool)}
	if m != nil && m.redis != nil {
		s.redisCalls = m.redis.calls.Load()
		m.redis.longest.Store(0)
	}
	if m != nil && m.probes != nil {
		m.probes.redis.Store(0)
		m.probes.catalog.Store(0)
	}
	if m != nil && m.backends != nil {
		s.processes = processTicks(append(m.backends(), redisServers()...))
	}
	s.sched = schedCounts()
	runtime.ReadMemStats(&s.mem)
	s.cpu = processCPU()
	s.busy, s.total = tenancytest.CPUTicks()
	s.at = time.Now()
	return s
}

// stop ends the span of the load that r reports.
func (s *span) stop(r loadResult) stats {
	wall := time.Since(s.at)
	busy, total := tenancytest.CPUTicks()
	cpu := processCPU()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	sched := schedCounts()
	var backends, redises []int
	if m := s.m; m != nil && m.backends != nil {
		backends, redises = m.backends(), redisServers()
	}
	processes := processTicks(append(slices.Clone(backends), redises...))
	p := readPool(s.pool)
	out := stats{
		wall: wall, busyTicks: busy - s.busy, totalTicks: total - s.total,
		server: cpu - s.cpu, client: r.CPU, requests: r.OK, loadSeconds: r.Seconds,
		allocBytes: mem.TotalAlloc - s.mem.TotalAlloc,
		gcCycles:   mem.NumGC - s.mem.NumGC, gcPause: time.Duration(mem.PauseTotalNs - s.mem.PauseTotalNs),
		poolAcquires: p.acquires - s.pool0.acquires, poolWaits: p.empty - s.pool0.empty, poolWait: p.wait - s.pool0.wait,
	}
	spent := func(pid int) time.Duration {
		now, ok := processes[pid]
		if !ok {
			return 0 // exited: its time is lost
		}
		if before, ok := s.processes[pid]; ok && before <= now {
			now -= before
		} // else new since the start: all of its time is the span's
		return time.Duration(now) * clockTick
	}
	for _, pid := range backends {
		out.postgres += spent(pid)
	}
	for _, pid := range redises {
		out.redis += spent(pid)
	}
	// PauseNs holds the last 256 cycles' pauses, the latest at (NumGC+255)%256.
	for n := mem.NumGC; n > s.mem.NumGC && n+256 > mem.NumGC; n-- {
		out.gcMax = max(out.gcMax, time.Duration(mem.PauseNs[(n+255)%256]))
	}
	if len(sched) == len(s.sched) {
		out.sched = make([]uint64, len(sched))
		for i := range sched {
			out.sched[i] = sched[i] - s.sched[i]
		}
	}
	if m := s.m; m != nil && m.redis != nil {
		out.redisCalls = m.redis.calls.Load() - s.redisCalls
		out.redisMax = time.Duration(m.redis.longest.Load())
	}
	if m := s.m; m != nil && m.probes != nil {
		out.redisPingMax = time.Duration(m.probes.redis.Load())
		out.catalogPingMax = time.Duration(m.probes.catalog.Load())
	}
	return out
}

// stats add up measured spans.
type stats struct {
	wall                  time.Duration // the spans, from the load process's start to its exit
	busyTicks, totalTicks uint64        // the machine's CPUs, every process (/proc/stat)
	server, client        time.Duration // CPU time of this process, and of the load process
	postgres, redis       time.Duration // CPU time of the servers' PostgreSQL backends, and of Redis
	requests              int           // answered OK
	loadSeconds           float64       // how long the load ran, by its own clock
	allocBytes            uint64        // allocated on this process's heap
	gcCycles              uint32
	gcPause, gcMax        time.Duration // this process's stop-the-world pauses: total, longest
	sched                 []uint64      // Go's scheduling latencies, counts in schedBuckets
	poolAcquires          int64
	poolWaits             int64         // acquires that found no idle connection
	poolWait              time.Duration // and waited this long in all
	redisCalls            int64         // the gateway's own
	redisMax              time.Duration // the longest of them
	redisPingMax          time.Duration // the longest probed PING
	catalogPingMax        time.Duration // the longest probed catalog SELECT 1
}

func (s *stats) add(o stats) {
	s.wall += o.wall
	s.busyTicks += o.busyTicks
	s.totalTicks += o.totalTicks
	s.server += o.server
	s.client += o.client
	s.postgres += o.postgres
	s.redis += o.redis
	s.requests += o.requests
	s.loadSeconds += o.loadSeconds
	s.allocBytes += o.allocBytes
	s.gcCycles += o.gcCycles
	s.gcPause += o.gcPause
	s.gcMax = max(s.gcMax, o.gcMax)
	if len(s.sched) < len(o.sched) {
		s.sched = append(s.sched, make([]uint64, len(o.sched)-len(s.sched))...)
	}
	for i, n := range o.sched {
		s.sched[i] += n
	}
	s.poolAcquires += o.poolAcquires
	s.poolWaits += o.poolWaits
	s.poolWait += o.poolWait
	s.redisCalls += o.redisCalls
	s.redisMax = max(s.redisMax, o.redisMax)
	s.redisPingMax = max(s.redisPingMax, o.redisPingMax)
	s.catalogPingMax = max(s.catalogPingMax, o.catalogPingMax)
}

// rate is requests answered per second of load.
func (s stats) rate() float64 {
	if s.loadSeconds == 0 {
		return 0
	}
	return float64(s.requests) / s.loadSeconds
}

// perRequest is d per answered request, in microseconds.
func (s stats) perRequest(d time.Duration) float64 {
	if s.requests == 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(s.requests)
}

// clockTick is the unit of /proc/stat: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// rest is the machine's busy CPU time that was neither this process's, nor
// the load process's, nor the servers' PostgreSQL backends' or Redis's:
// other processes (PostgreSQL's own background processes, other sessions'
// backends), and the kernel's work on no process's account (interrupts,
// softirqs of the loopback network).
func (s stats) rest() time.Duration {
	return max(time.Duration(s.busyTicks)*clockTick-s.server-s.client-s.postgres-s.redis, 0)
}

// cpuBusy is the share of all CPUs' time spent busy, in percent.
func (s stats) cpuBusy() float64 {
	if s.totalTicks == 0 {
		return 0
	}
	return 100 * float64(s.busyTicks) / float64(s.totalTicks)
}

// share is d's share of all CPUs' time over the spans, in percent.
func (s stats) share(d time.Duration) float64 {
	if s.wall == 0 {
		return 0
	}
	return 100 * float64(d) / (float64(s.wall) * float64(runtime.NumCPU()))
}

func (s stats) gcPerSecond() float64 {
	if s.wall == 0 {
		return 0
	}
	return float64(s.gcCycles) / s.wall.Seconds()
}

// gcPauseMs is the pauses' total in milliseconds per second of measuring.
func (s stats) gcPauseMs() float64 {
	if s.wall == 0 {
		return 0
	}
	return ms(s.gcPause) / s.wall.Seconds()
}

// schedQuantile is the q-quantile of how long goroutines of this process
// waited, runnable, for a CPU (runtime/metrics /sched/latencies, at its
// buckets' resolution: the bucket's upper bound).
func (s stats) schedQuantile(q float64) time.Duration {
	var n uint64
	for _, c := range s.sched {
		n += c
	}
	if n == 0 || len(schedBuckets) != len(s.sched)+1 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range s.sched {
		if seen += c; seen >= rank {
			hi := schedBuckets[i+1]
			if math.IsInf(hi, 1) {
				hi = schedBuckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}

const schedMetric = "/sched/latencies:seconds"

// schedBuckets are the boundaries of schedMetric's histogram, the same
// for the life of the process.
var schedBuckets []float64

func schedCounts() []uint64 {
	sample := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := sample[0].Value.Float64Histogram()
	schedBuckets = h.Buckets
	return slices.Clone(h.Counts)
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processTicks reads the CPU time (user and system, in clock ticks) of
// the processes pids from /proc; a process gone is left out.
func processTicks(pids []int) map[int]uint64 {
	out := make(map[int]uint64, len(pids))
	for _, pid := range pids {
		if _, f, ok := procStat(pid); ok && len(f) >= 13 {
			utime, _ := strconv.ParseUint(f[11], 10, 64)
			stime, _ := strconv.ParseUint(f[12], 10, 64)
			out[pid] = utime + stime
		}
	}
	return out
}

// redisServers lists the running redis-server processes (the test server,
// which the gateway's rate limiter uses; other sessions' private ones too).
func redisServers() []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, d := range dirs {
		if pid, err := strconv.Atoi(d.Name()); err == nil {
			if comm, _, ok := procStat(pid); ok && comm == "redis-server" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// procStat returns a process's command name and the fields of
// /proc/<pid>/stat after it (state first; utime and stime at 11 and 12).
func procStat(pid int) (comm string, fields []string, ok bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", nil, false
	}
	// pid (comm) state ppid …: comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	return string(raw[open+1 : end]), strings.Fields(string(raw[end+1:])), true
}

// backendLister returns a function listing the PostgreSQL backends
// connected to the env's databases (the gateway's pools, its catalog pool
// and feed, the plain handler's pools), except the pids given (probes)
// and its own connection.
func backendLister(b *testing.B, env *tenancytest.Env, except ...uint32) func() []int {
	monitor := tenancytest.Connect(b, env.CatalogURL)
	skip := make([]int64, len(except))
	for i, pid := range except {
		skip[i] = int64(pid)
	}
	return func() []int {
		rows, err := monitor.Query(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE starts_with(datname, $1) AND pid <> pg_backend_pid() AND pid <> ALL($2)`, env.Prefix, skip)
		if err != nil {
			return nil
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return nil
		}
		return pids
	}
}

type poolCounts struct {
	acquires, empty int64
	wait            time.Duration
}

func readPool(pool func() *pgxpool.Stat) poolCounts {
	if pool == nil {
		return poolCounts{}
	}
	st := pool()
	if st == nil {
		return poolCounts{}
	}
	return poolCounts{acquires: st.AcquireCount(), empty: st.EmptyAcquireCount(), wait: st.EmptyAcquireWaitTime()}
}

// redisTimer is a go-redis hook timing every command of a client.
type redisTimer struct {
	calls   atomic.Int64
	longest atomic.Int64 // nanoseconds, since the last reset
}

var _ redis.Hook = (*redisTimer)(nil)

func (t *redisTimer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *redisTimer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		t.calls.Add(1)
		atomicMax(&t.longest, time.Since(start))
		return err
	}
}

func (t *redisTimer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		t.calls.Add(1)
		atomicMax(&t.longest, time.Since(start))
		return err
	}
}

func atomicMax(v *atomic.Int64, d time.Duration) {
	for {
		old := v.Load()
		if int64(d) <= old || v.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// probes time a Redis PING and a SELECT 1 on the catalog database every
// 10 ms from this process, each on a connection of its own; they keep the
// longest of each since the last reset.
type probes struct {
	redis, catalog atomic.Int64
	pid            uint32 // the catalog probe's backend
}

func startProbes(b *testing.B, catalogURL string) *probes {
	opts, err := redis.ParseURL(tenancytest.RedisURL())
	require.NoError(b, err)
	opts.PoolSize = 1
	rdb := redis.NewClient(opts)
	conn := tenancytest.Connect(b, catalogURL)
	p := &probes{pid: conn.PgConn().PID()}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			if rdb.Ping(ctx).Err() == nil {
				atomicMax(&p.redis, time.Since(start))
			}
			start = time.Now()
			var one int
			if conn.QueryRow(ctx, `SELECT 1`).Scan(&one) == nil {
				atomicMax(&p.catalog, time.Since(start))
			}
		}
	}()
	// Registered after Connect's cleanup, so it runs first: the loop ends
	// before its connection closes.
	b.Cleanup(func() {
		close(stop)
		<-done
		rdb.Close()
	})
	return p
}
