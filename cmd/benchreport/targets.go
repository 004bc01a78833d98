package main

import "slices"

// targets are the figures of the report, in order: the targets the issues
// set, then figures reported without one. Miss is shown only when a target
// is missed; like Detail it may name figures of the same benchmark in
// braces. Write a Miss only from a measured cause.
var targets = slices.Concat(targetFigures, []Spec{
	thousandRate("uniform", "uniform"), thousandRate("zipf", "Zipf"),
}, otherFigures)

var targetFigures = []Spec{
	// Issue 2 (list) and issue 4 (create): gateway ≥ 0.8 × a bare handler.
	ratio("shared-list", "jwt", 2), ratio("shared-list", "key", 2),
	ratio("dedicated-list", "jwt", 2), ratio("dedicated-list", "key", 2),
	ratio("shared-create", "jwt", 4), ratio("shared-create", "key", 4),
	ratio("dedicated-create", "jwt", 4), ratio("dedicated-create", "key", 4),

	// Issue 3.
	{Bench: "KeyVerify/cached", Unit: "ns/op", Label: "API-key verification, cached", Issue: 3,
		Cmp: "≤", Target: 5000, Scale: 0.001, Suffix: "µs"},

	// Issue 13: the gateway against a plain query of the same rows.
	plainRatio("shared-list", "jwt"), plainRatio("shared-list", "key"),
	plainRatio("dedicated-list", "jwt"), plainRatio("dedicated-list", "key"),
	plainRatio("shared-create", "jwt"), plainRatio("shared-create", "key"),
	plainRatio("dedicated-create", "jwt"), plainRatio("dedicated-create", "key"),

	// Issue 7: added latency at half load.
	added("shared-list", "shared"), added("dedicated-list", "dedicated"),
	// Issue 13: added latency at half load against the plain query.
	addedPlainP50("shared-list", "shared"), addedPlainP50("dedicated-list", "dedicated"),
	addedPlainP99("shared-list", "shared"), addedPlainP99("dedicated-list", "dedicated"),

	// Issue 7: 1,000 dedicated tenants behind max_open=64.
	thousandErrors("uniform", "uniform"), thousandConns("uniform", "uniform"),
	thousandErrors("zipf", "Zipf"), thousandConns("zipf", "Zipf"),

	// Issue 7: noisy neighbour.
	noisy("starter", "50"), noisy("pro", "200"),

	// Issue 5: provisioning, fan-out, move.
	{Bench: "Provision/template", Unit: "ms/usable", Label: "Provisioning to usable, from the server's template (mean of 20)",
		Issue: 5, Cmp: "≤", Target: 300, Suffix: "ms", Detail: "slowest {max-ms} ms; the first on a server, which makes the template: {first-ms} ms"},
	{Bench: "Provision/empty", Unit: "ms/usable", Label: "Provisioning to usable, created empty and migrated (the fallback; mean of 20)",
		Issue: 5, Cmp: "≤", Target: 300, Suffix: "ms", Detail: "slowest {max-ms} ms"},
	{Bench: "Fanout", Unit: "wall/bound", Label: "Migration fan-out over 200 databases at concurrency 4, wall ÷ bound N × one ÷ C",
		Issue: 5, Cmp: "≤", Target: 1.3, Suffix: "×",
		Detail: "{ms/run} ms against the bound {bound-ms/run} ms; the same 200 at concurrency 1: {serial-ms} ms, at 2: {c2-ms} ms; CPUs {cpu-%} % busy at 4, {serial-cpu-%} % at 1",
		Miss: "The bound assumes that 4 migrations at once finish 4 times as fast as one; meeting 1.3× needs a speedup " +
			"of 3.1× over migrating one database after another. Measured on the same 200 databases: concurrency 2 " +
			"gave {c2-speedup}× and concurrency 4 gave {speedup}× over concurrency 1 ({serial-ms} ms). The machine's " +
			"2 cores were {serial-cpu-%} % busy at concurrency 1 and {cpu-%} % at 4, that is saturated: migrating a " +
			"database is work PostgreSQL and the runner do on a CPU (a new backend per connection, DDL, files for " +
			"every table and index, catalog writes), and once both cores are busy more concurrency cannot help, so " +
			"a 3.1× speedup needs more cores than this machine has. Against min(concurrency, cores) the run stands " +
			"at {wall/cpu-bound}× " +
			"(`wall/cpu-bound`). What would meet it: a PostgreSQL server with at least as many cores as the " +
			"fan-out's concurrency, or the dedicated databases spread over several servers (`tenantgate servers " +
			"add`), where the concurrent migrations really run side by side. Also, this is the worst case: every " +
			"database starts empty and takes the whole schema, while a real upgrade applies only the newest " +
			"migrations."},
	// Issue 13: a new enterprise tenant end to end, against the floor.
	enterpriseCreate, enterpriseCreateMany, upgradeToDedicated,

	// Issue 14: the isolation audit of a fleet.
	{Bench: "AuditFleet", Unit: "ns/op", Label: "Isolation audit of 1,000 databases, 16 at a time, wall time",
		Issue: 14, Cmp: "<", Target: 30e9, Scale: 1e-9, Suffix: " s",
		Detail: "{ns/database} ns a database; the expected schema of the version, built once on a scratch database: {expected-ms} ms"},
	// Issue 15: a 100k-row tenant's archive.
	{Bench: "Export", Unit: "s/op", Label: "Export of a 100,000-row tenant (one snapshot, compressed archive)",
		Issue: 15, Cmp: "<", Target: 2, Suffix: " s", Detail: "{rows/s} rows/s; archive {archive-MB} MB; peak RSS {peak-RSS-MB} MB"},
	{Bench: "ExportMillion", Unit: "peak-RSS-MB", Label: "Export of a 1,000,000-row tenant: the process's peak RSS",
		Issue: 15, Cmp: "<", Target: 150, Suffix: " MB", Detail: "{s/op} s; {rows/s} rows/s; archive {archive-MB} MB"},
	{Bench: "Import", Unit: "s/op", Label: "Import of the same archive as a new tenant (verified, loaded, read back)",
		Issue: 15, Cmp: "<", Target: 5, Suffix: " s", Detail: "{rows/s} rows/s; peak RSS {peak-RSS-MB} MB"},
	// Issue 16: what metering costs the gateway.
	{Bench: "MeteringOverhead", Unit: "metering-ratio", Label: "Gateway throughput with usage metering ÷ without (GET /api/agents, alternated rounds)",
		Issue: 16, Cmp: "≥", Target: 0.98, Suffix: "×", Detail: "{metered-req/s} req/s metered, {unmetered-req/s} unmetered"},

	moveTotal("superuser-owner", "databases owned by a superuser, as in tests and `dev`"),
	moveFreeze("superuser-owner", "databases owned by a superuser, as in tests and `dev`"),
	moveTotal("plain-owner", "databases owned by a plain role, as on a managed PostgreSQL"),
	moveFreeze("plain-owner", "databases owned by a plain role, as on a managed PostgreSQL"),
}

// enterpriseCreateWhere is where a single create's time went, measured in
// the same run.
const enterpriseCreateWhere = "The job's own steps, measured in the same run from the provisioner's log (medians " +
	"of the single creates): copying the template {step-create-ms} ms (the floor's CREATE DATABASE, on a connection " +
	"the provisioner keeps to the server, under the template lock taken shared, then the database's own grant in " +
	"the same round trip), marking it ready {step-ready-ms} ms (one catalog write, then the replicas told); the job " +
	"in the catalog, from its insert to its end, {job-ms} ms. The isolation audit that follows every provisioning " +
	"is queued and runs after the job, off the path `--wait` waits on. No timer is waited on: the worker claims on " +
	"the catalog's notification and `--wait` reads the job on its notifications. The command around the job costs " +
	"{cli-shared-ms} ms by itself, measured as a shared-plan create, which makes no database (process start, " +
	"configuration, a new catalog connection, registration). "

var (
	enterpriseCreate = Spec{Bench: "EnterpriseCreate", Unit: "cli/floor",
		Label: "`tenants create --plan enterprise --wait` (a process, start to exit, against a running provisioner) ÷ " +
			"a bare CREATE DATABASE … TEMPLATE of the same template (medians of 9 alternated rounds)",
		Issue: 13, Cmp: "≤", Target: 2, Suffix: "×",
		Detail: "{cli-ms} ms against {floor-ms} ms; slowest {cli-max-ms} ms; `psql -c 'CREATE DATABASE …'` as a " +
			"process {psql-ms} ms",
		Miss: enterpriseCreateWhere + "Beyond the floor and the job, what is left " +
			"to cut is the command's start ({cli-shared-ms} ms), which a long-lived client (the admin API's " +
			"POST /admin/tenants, its job followed with `follow=true`) does not pay."}
	enterpriseCreateMany = Spec{Bench: "EnterpriseCreate", Unit: "c10/floor",
		Label: "10 concurrent `tenants create --plan enterprise --wait`, wall time ÷ 10, ÷ the same floor",
		Issue: 13, Cmp: "≤", Target: 1.5, Suffix: "×",
		Detail: "{c10-ms/tenant} ms per tenant against {floor-ms} ms; the worker runs 4 jobs at once",
		Miss: "The copies of the template are serialized by the server's template lock, so 10 creates cost at " +
			"least 10 floors; the rest of each job overlaps with the others' copies, and the 2 cores are shared " +
			"by the 10 commands, the provisioner and PostgreSQL. " + enterpriseCreateWhere}
	upgradeToDedicated = Spec{Bench: "UpgradeToDedicated", Unit: "upgrade/floor",
		Label: "A free-plan tenant's upgrade to enterprise, from the signed Stripe webhook's send to the first request " +
			"served from its own database (the real `serve` and `provisioner` processes) ÷ the same floor (medians of 9 " +
			"alternated rounds)",
		Issue: 13, Cmp: "≤", Target: 2, Suffix: "×",
		Detail: "{upgrade-ms} ms against {floor-ms} ms; slowest {upgrade-max-ms} ms; from the signup's send " +
			"{signup-ms} ms ({signup/floor}×); the move job, from its insert to its end, {job-ms} ms",
		Miss: "The move job's steps, medians from the provisioner's log: resolve {step-resolve-ms} ms, mark " +
			"{step-mark-moving-ms}, fence {step-fence-ms}, copy the rows {step-copy-ms}, verify them {step-verify-ms}, " +
			"switch {step-switch-ms}, cleanup {step-cleanup-ms}, the plan change {step-plan-enterprise-ms} ms. The " +
			"resolve step's parts, from the same log: {resolve-register-ms} ms reading the source's fence and " +
			"registering the database (the first statements on a new connection to the source database), " +
			"{resolve-provision-ms} ms provisioning it (the copy of the template, which is the floor, and marking it " +
			"ready), {resolve-connect-ms} ms from its readiness to the mark (a new connection to the new database, " +
			"fencing it, reading both databases' columns). So a move holds a whole floor and then its own work: each " +
			"step a few round trips, two new backends (one costs about 20 ms on this server, connect and first " +
			"query, measured apart), and the webhook's handling and the worker's claim before it. That work alone " +
			"is more than the floor. What would meet it (not built): databases made ahead of demand, a few spares " +
			"per server kept at the newest schema and audited, renamed to the tenant on use, which takes the floor " +
			"out of the path; and the move's connections to both databases opened while the target is provisioned."}
)

// otherFigures have no target of their own.
var otherFigures = []Spec{
	{Bench: "FleetCreate", Unit: "wall/bound", Label: "1,000 enterprise tenants by 10 concurrent CLI loops, wall time ÷ " +
		"(1,000 × the floor ÷ the cores)", Suffix: "×",
		Detail: "{wall-s} s against {bound-s} s ({tenants} tenants, floor {floor-ms} ms, {cores} cores); {ms/tenant} ms " +
			"a tenant; the slowest command {slowest-ms} ms"},
	{Bench: "Fanout", Unit: "wall/cpu-bound", Label: "Fan-out wall ÷ (N × one ÷ min(concurrency, cores))", Suffix: "×",
		Detail: "speedup over concurrency 1: {speedup}× at 4, {c2-speedup}× at 2"},
	{Bench: "NoisyNeighbour/noisy-pro", Unit: "noisy-served-req/s", Label: "Noisy tenant (pro, 200 rps) served while sending 2,000 req/s",
		Suffix: "req/s", Detail: "share refused with 429: {noisy-429-share}; errors {noisy-errors}"},
	{Bench: "NoisyNeighbour/noisy-starter", Unit: "noisy-served-req/s", Label: "Noisy tenant (starter, 50 rps) served while sending 500 req/s",
		Suffix: "req/s", Detail: "share refused with 429: {noisy-429-share}; errors {noisy-errors}"},
	{Bench: "AddedLatency/shared-list", Unit: "added-p50-ms", Label: "Added p50 latency at half load against the bare handler, shared tenant", Suffix: "ms",
		Detail: "gateway {gateway-p50-ms} ms vs bare {bare-p50-ms} ms"},
	{Bench: "AddedLatency/dedicated-list", Unit: "added-p50-ms", Label: "Added p50 latency at half load against the bare handler, dedicated tenant", Suffix: "ms",
		Detail: "gateway {gateway-p50-ms} ms vs bare {bare-p50-ms} ms"},
	isolation("shared-list"), isolation("dedicated-list"), isolation("shared-create"), isolation("dedicated-create"),
	{Bench: "KeyVerify/miss", Unit: "ns/op", Label: "API-key verification, cache miss (instant source)", Scale: 0.001, Suffix: "µs"},
	{Bench: "KeyVerify/cached-parallel", Unit: "ns/op", Label: "API-key verification, cached, parallel", Scale: 0.001, Suffix: "µs"},
	{Bench: "Verify/cached", Unit: "ns/op", Label: "JWT verification, from the verified-token cache", Scale: 0.001, Suffix: "µs"},
	{Bench: "Verify/full", Unit: "ns/op", Label: "JWT verification, full (HMAC and claims)", Scale: 0.001, Suffix: "µs"},
	{Bench: "Revoked/hit", Unit: "ns/op", Label: "Revocation check, revoked token", Suffix: "ns"},
	{Bench: "Revoked/miss", Unit: "ns/op", Label: "Revocation check, valid token", Suffix: "ns"},
	{Bench: "LookupHit", Unit: "ns/op", Label: "Placement lookup, cache hit (parallel)", Suffix: "ns"},
	{Bench: "LeaseRelease", Unit: "ns/op", Label: "Pool lease + release, cache hit (parallel)", Suffix: "ns"},
	{Bench: "ScopeList/scope", Unit: "ns/op", Label: "Tenant-scoped list of 20 agents (setting + query in one batch)", Scale: 0.001, Suffix: "µs"},
	{Bench: "ScopeList/bare-query", Unit: "ns/op", Label: "The same query alone on the same pool", Scale: 0.001, Suffix: "µs"},
	{Bench: "Allow/local", Unit: "ns/op", Label: "Rate limiter per request, in process", Suffix: "ns"},
	{Bench: "Allow/redis", Unit: "ns/op", Label: "Rate limiter per request, Redis (one round trip)", Scale: 0.001, Suffix: "µs"},
	{Bench: "Allow/redis-batched", Unit: "ns/op", Label: "Rate limiter per request, Redis batched", Scale: 0.001, Suffix: "µs"},
	{Bench: "BatchedAcrossReplicas", Unit: "used/most", Label: "Batched rate limit, 2 replicas flooding one tenant: share of what the bucket granted that was admitted",
		Detail: "{calls/allowed} Redis calls per admitted request (the plain limiter: 1)"},
	{Bench: "Hit/local", Unit: "ns/op", Label: "Login throttle counter, in process", Suffix: "ns"},
	{Bench: "Hit/redis", Unit: "ns/op", Label: "Login throttle counter, Redis", Scale: 0.001, Suffix: "µs"},
}

// loadWhat names a LoadGatewayVsBare sub-benchmark's request, tenant and
// credential.
func loadWhat(name, auth string) (what, kind, cred string) {
	kind, op, _ := cut(name)
	what = map[string]string{"list": "GET /api/agents", "create": "POST /api/tasks"}[op]
	cred = map[string]string{"jwt": "session JWT", "key": "API key"}[auth]
	return what, kind, cred
}

// cpuPerRequest says where the CPU of one request went, for the gateway
// driven with auth against the reference ref (bare or plain), from the
// figures LoadGatewayVsBare measures in the same rounds.
func cpuPerRequest(auth, ref string) string {
	return "The machine's CPUs were {" + auth + "-cpu-%} % busy in the gateway's rounds and {" + ref + "-cpu-%} % in " +
		"the " + ref + " handler's; where they are saturated, a rate is the CPU there is ÷ the CPU a request takes. " +
		"Measured per request in the same rounds, gateway against " + ref + ": this process (the server) {" + auth +
		"-server-us/req} against {" + ref + "-server-us/req} µs of CPU, allocating {" + auth + "-alloc-B/req} against {" +
		ref + "-alloc-B/req} bytes; PostgreSQL {" + auth + "-postgres-us/req} against {" + ref + "-postgres-us/req} µs; " +
		"Redis {" + auth + "-redis-us/req} against {" + ref + "-redis-us/req} µs; the load process {" + auth +
		"-client-us/req} against {" + ref + "-client-us/req} µs; everything else on the machine (other processes, the " +
		"kernel's loopback network) {" + auth + "-rest-us/req} against {" + ref + "-rest-us/req} µs. "
}

func ratio(name, auth string, issue int) Spec {
	what, kind, cred := loadWhat(name, auth)
	return Spec{Bench: "LoadGatewayVsBare/" + name, Unit: auth + "-ratio",
		Label: "Gateway ÷ bare handler, " + what + ", " + kind + " tenant, " + cred,
		Issue: issue, Cmp: "≥", Target: 0.8, Detail: "{" + auth + "-req/s} vs {bare-req/s} req/s",
		Miss: cpuPerRequest(auth, "bare") + "The bare handler makes the same store call on the same pool, so the " +
			"difference is the middleware's (authentication, tenant resolution, the rate limit, the idempotency check, " +
			"the JSON access log, metrics and usage metering), a fixed cost that weighs most on the lightest request. " +
			"What would fix it: less CPU and fewer allocations per request in the middleware."}
}

func plainRatio(name, auth string) Spec {
	what, kind, cred := loadWhat(name, auth)
	return Spec{Bench: "LoadGatewayVsBare/" + name, Unit: auth + "-plain-ratio",
		Label: "Gateway ÷ plain query (a superuser's pgxpool: no transaction, no set_config, no RLS), " + what + ", " +
			kind + " tenant, " + cred,
		Issue: 13, Cmp: "≥", Target: 0.90,
		Detail: "{" + auth + "-req/s} vs {plain-req/s} req/s; the bare handler {bare-req/s}; the load process took " +
			"{client-cpu-%} % of the CPUs",
		Miss: cpuPerRequest(auth, "plain") + "The bare handler (the same store call, with its transaction, set_config " +
			"and row-level security, but no middleware) reached {bare-plain-ratio} of the plain handler's rate by " +
			"itself, with PostgreSQL at {bare-postgres-us/req} µs and its server at {bare-server-us/req} µs a request: " +
			"that part of the gap is what isolation costs. The rest is the gateway's own: in this process {" + auth +
			"-server-us/req} µs a request against the bare handler's {bare-server-us/req}, in PostgreSQL {" + auth +
			"-postgres-us/req} against {bare-postgres-us/req}, in the load process {" + auth + "-client-us/req} " +
			"against {bare-client-us/req}. What would close it: less CPU per request in the gateway process."}
}

// stalls lists what could hold a request up, measured in the worst run of
// AddedLatency, the gateway's rounds against the plain handler's.
const stalls = "Measured in the worst run's rounds, the gateway's against the plain handler's: the CPUs were " +
	"{worst-gateway-cpu-%} vs {worst-plain-cpu-%} % busy (this process {worst-gateway-server-cpu-%} vs " +
	"{worst-plain-server-cpu-%} %, the load process {worst-gateway-client-cpu-%} vs {worst-plain-client-cpu-%} %, " +
	"PostgreSQL {worst-gateway-postgres-cpu-%} vs {worst-plain-postgres-cpu-%} %, everything else (other processes, " +
	"the kernel) {worst-gateway-rest-cpu-%} vs {worst-plain-rest-cpu-%} %); goroutines of this process waited for a " +
	"CPU up to {worst-gateway-sched-p99-ms} vs {worst-plain-sched-p99-ms} ms (p99 of Go's scheduling latency); garbage " +
	"collection paused it {worst-gateway-gc-pause-ms} vs {worst-plain-gc-pause-ms} ms per second, the longest pause " +
	"{worst-gateway-gc-max-ms} vs {worst-plain-gc-max-ms} ms; {worst-gateway-pool-waits} vs {worst-plain-pool-waits} " +
	"connection acquires found the pool empty and waited {worst-gateway-pool-wait-avg-ms} vs " +
	"{worst-plain-pool-wait-avg-ms} ms on average ({worst-gateway-pool-wait-ms} vs {worst-plain-pool-wait-ms} ms " +
	"in all); the gateway's {worst-gateway-redis-calls} Redis calls took at most {worst-gateway-redis-max-ms} " +
	"ms; a Redis PING and a catalog SELECT 1, probed from this process every 10 ms, took at most " +
	"{worst-gateway-redis-ping-max-ms} and {worst-gateway-catalog-ping-max-ms} ms in the gateway's rounds, " +
	"{worst-plain-redis-ping-max-ms} and {worst-plain-catalog-ping-max-ms} ms in the plain handler's; the load " +
	"process's own schedule handed its requests out up to {worst-gateway-send-lag-p99-ms} vs " +
	"{worst-plain-send-lag-p99-ms} ms late (p99 of the delay from due to sent, its timer's and its wait for a CPU: " +
	"part of the latencies above that is the client's, not the server's). "

func added(name, kind string) Spec {
	return Spec{Bench: "AddedLatency/" + name, Unit: "added-p99-ms",
		Label: "Added p99 latency against the bare handler at half the plain query's maximum rate, GET /api/agents, " +
			kind + " tenant (5 runs pooled)",
		Issue: 7, Cmp: "≤", Target: 5, Suffix: "ms",
		Detail: "gateway {gateway-p99-ms} ms vs bare {bare-p99-ms} ms at {offered-req/s} req/s; the plain query's " +
			"maximum {plain-max-req/s} req/s; CPUs {gateway-cpu-%} % vs {bare-cpu-%} % busy; GC pauses " +
			"{gateway-gc-pause-ms} vs {bare-gc-pause-ms} ms/s",
		Miss: "The medians differ by {added-p50-ms} ms; the p99 is set by the requests that waited. At this rate " +
			"the gateway ran at {gateway-load-%} % of its own maximum ({gateway-max-req/s} req/s). Over all runs, " +
			"{gateway-pool-waits} of the gateway's {gateway-pool-acquires} connection acquires found the pool " +
			"({pool-conns} connections, shared with the bare handler) empty and waited {gateway-pool-wait-avg-ms} ms " +
			"on average, {bare-pool-waits} of the bare handler's {bare-pool-acquires} waited {bare-pool-wait-avg-ms} " +
			"ms (the same pool, the same store call); " +
			"the CPUs were {gateway-cpu-%} % busy in the gateway's rounds and {bare-cpu-%} % in the bare " +
			"handler's (the load process, a process of its own, took {gateway-client-cpu-%} % and " +
			"{bare-client-cpu-%} % of them), and this process paused for garbage collection {gateway-gc-pause-ms} and " +
			"{bare-gc-pause-ms} ms per second ({gateway-gc/s} and {bare-gc/s} cycles). " + stalls}
}

func addedPlainP50(name, kind string) Spec {
	return Spec{Bench: "AddedLatency/" + name, Unit: "added-plain-p50-ms",
		Label: "Added p50 latency against the plain query at half its maximum rate, GET /api/agents, " + kind +
			" tenant (5 runs pooled)",
		Issue: 13, Cmp: "≤", Target: 0.3, Suffix: "ms",
		Detail: "gateway {gateway-p50-ms} ms vs plain {plain-p50-ms} ms at {offered-req/s} req/s (the bare handler " +
			"{bare-p50-ms} ms); the plain query's maximum {plain-max-req/s} req/s",
		Miss: "Measured per request in the same rounds: this process (the server) spent {gateway-server-us/req} µs of CPU on a gateway " +
			"request against {plain-server-us/req} µs on a plain one, and PostgreSQL {gateway-postgres-us/req} " +
			"against {plain-postgres-us/req} µs; the bare handler, with the transaction, set_config and row-level " +
			"security but no middleware, had a median of {bare-p50-ms} ms ({bare-server-us/req} and " +
			"{bare-postgres-us/req} µs). At this rate the gateway ran at {gateway-load-%} % of its own maximum, " +
			"the plain handler at 50 %; the CPUs were {gateway-cpu-%} % and {plain-cpu-%} % busy, so part of a " +
			"request's time is waiting for a core busy with other requests' work. Both pools have {pool-conns} " +
			"connections: {gateway-pool-waits} of the gateway's {gateway-pool-acquires} acquires found its pool " +
			"empty and waited {gateway-pool-wait-avg-ms} ms on average, {plain-pool-waits} of the plain handler's " +
			"{plain-pool-acquires} waited {plain-pool-wait-avg-ms} ms."}
}

func addedPlainP99(name, kind string) Spec {
	return Spec{Bench: "AddedLatency/" + name, Unit: "added-plain-p99-ms",
		Label: "Added p99 latency against the plain query at half its maximum rate, GET /api/agents, " + kind +
			" tenant: the worst of 5 runs",
		Issue: 13, Cmp: "≤", Target: 2, Suffix: "ms",
		Detail: "{p99-runs-met} of {runs} runs ≤ 2 ms; the worst, run {worst-run}: gateway {worst-gateway-p99-ms} ms " +
			"vs plain {worst-plain-p99-ms} ms; the best run {added-plain-p99-best-ms} ms; the runs pooled " +
			"{added-plain-p99-pooled-ms} ms",
		Miss: "At this rate the gateway ran at {gateway-load-%} % of its own maximum ({gateway-max-req/s} req/s), the " +
			"plain handler at 50 % of its own ({plain-max-req/s} req/s). " + stalls + "How to read these: a stall " +
			"of the gateway process's own shows as a figure the plain handler's rounds do not have (waits for a pool " +
			"connection, Go's scheduling latency, GC pauses, slow Redis calls); a stall of the machine (other " +
			"processes, PostgreSQL, the catalog) shows in both. What would help (not measured here): fewer CPU " +
			"microseconds per request in the gateway (see the throughput figures against the plain query), so that " +
			"the same rate leaves it further from its maximum."}
}

func isolation(name string) Spec {
	what, kind, _ := loadWhat(name, "")
	return Spec{Bench: "LoadGatewayVsBare/" + name, Unit: "bare-plain-ratio",
		Label:  "Bare handler ÷ plain query (isolation alone: transaction, set_config, RLS), " + what + ", " + kind + " tenant",
		Detail: "{bare-req/s} vs {plain-req/s} req/s; PostgreSQL {bare-postgres-us/req} vs {plain-postgres-us/req} µs a request"}
}

func thousandErrors(name, how string) Spec {
	return Spec{Bench: "ThousandTenants/" + name, Unit: "errors",
		Label: "1,000 dedicated tenants, max_open 64, " + how + " traffic: errors", Issue: 7, Cmp: "=", Target: 0,
		Detail: "{req/s} req/s from 32 clients for 15 s, {tenants-served} tenants served",
		Miss: "Every error was a 503 (the first few are in the benchmark's log): a request whose pool must open a " +
			"connection waits for a token of the connection budget at most `pools.connect_timeout` (2 s), and is " +
			"then refused with Retry-After. The server is what is slow here: in the same run, 32 clients opening a " +
			"connection of their own per request got {connect-req/s} sessions a second out of it, and with a pool " +
			"cache hit rate of {pool-hit-%} % nearly every request of the 32 clients needed one, so requests queued " +
			"for tokens (p50 {p50-ms} ms, p99 {p99-ms} ms) and the slowest reached the 2 s bound. Nothing leaked " +
			"past the budget (see the peak connections). What would fix it: a server that sets sessions up faster " +
			"(a connection pooler such as PgBouncer in front of PostgreSQL), or fewer concurrent clients for the " +
			"rate the server allows."}
}

func thousandConns(name, how string) Spec {
	return Spec{Bench: "ThousandTenants/" + name, Unit: "peak-conns",
		Label: "1,000 dedicated tenants, max_open 64, " + how + " traffic: peak server connections", Issue: 7,
		Cmp: "≤", Ref: "budget-conns",
		Detail: "sampled from pg_stat_activity every 10 ms; the pool cache's own count peaked at {peak-budget-conns}"}
}

func thousandRate(name, how string) Spec {
	return Spec{Bench: "ThousandTenants/" + name, Unit: "req/s",
		Label: "1,000 dedicated tenants, max_open 64, " + how + " traffic: throughput", Suffix: "req/s",
		Detail: "p50 {p50-ms} ms, p99 {p99-ms} ms; pool cache hit rate {pool-hit-%} %, {evictions} evictions; " +
			"{connect-ratio}× the reference in the same run, {connect-req/s} req/s from 32 clients each opening a " +
			"connection per request (connect, the same list query, close)"}
}

func noisy(plan, rps string) Spec {
	return Spec{Bench: "NoisyNeighbour/noisy-" + plan, Unit: "p99-ratio",
		Label: "Noisy neighbour (" + plan + ", " + rps + " rps, sending 10×): quiet tenant's p99 crowded ÷ alone",
		Issue: 7, Cmp: "≤", Target: 1.10, Suffix: "×",
		Detail: "{crowded-p99-ms} ms vs {quiet-p99-ms} ms; CPUs {crowded-cpu-%} % vs {quiet-cpu-%} % busy; " +
			"gateway process {crowded-gc/s} vs {quiet-gc/s} GC cycles/s",
		Miss: "The noisy tenant got no more than its limit ({noisy-served-req/s} req/s served, a share of " +
			"{noisy-429-share} refused with 429), so the database and the pool saw nothing of the excess. What the " +
			"excess still costs is CPU: every refused request is parsed, authenticated, resolved, checked against " +
			"the limit and answered with a JSON error and an access-log line, and its client runs on the same 2 " +
			"cores. The machine went from {quiet-cpu-%} % to {crowded-cpu-%} % busy and the gateway's process from " +
			"{quiet-gc/s} to {crowded-gc/s} garbage collections a second ({quiet-gc-pause-ms} → " +
			"{crowded-gc-pause-ms} ms of pauses per second). With the quiet tenant's p99 near 2 ms, a few tenths of " +
			"a millisecond spent waiting for a core or in a pause is the whole 10 %. What would fix " +
			"it: refuse floods before they reach a gateway (per-tenant limits at the ingress or load balancer), and " +
			"make a refusal cheaper in the gateway (fewer allocations on the 429 path, a sampled log line for " +
			"refusals instead of one per request); on this machine the flood's client itself takes a share of the " +
			"same 2 cores."}
}

func moveTotal(name, owner string) Spec {
	return Spec{Bench: "Move100k/" + name, Unit: "s/move", Label: "Move of a 100k-row tenant shared → dedicated, whole move; " + owner,
		Issue: 5, Cmp: "<", Target: 10, Suffix: "s"}
}

func moveFreeze(name, owner string) Spec {
	return Spec{Bench: "Move100k/" + name, Unit: "freeze-s/move", Label: "Move of a 100k-row tenant, write freeze; " + owner,
		Issue: 5, Cmp: "<", Target: 3, Suffix: "s"}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// notes say how each benchmark measures, in the report's order.
var notes = []struct{ bench, text string }{
	{"LoadGatewayVsBare", "`router`. The real gateway (JWT or API key, tenant resolution, placement cache, Redis rate limit " +
		"batched, idempotency check, JSON access log, Prometheus metrics, usage metering) against two references: the " +
		"bare handler, a Fiber handler running the same store call through the same tenant scope and pool (a " +
		"transaction that sets app.organization_id, then the query under row-level security), and the plain handler, " +
		"a Fiber handler running the same rows' query (the same columns, order and page; for a create the same " +
		"INSERT … RETURNING with its activity-log row) on a pgxpool of its own as a superuser, with no transaction, " +
		"no set_config and no row-level security, sized like the gateway's pool of that database. All are driven " +
		"over loopback HTTP by `cmd/loadgen`, a process of its own started for each round (16 keep-alive " +
		"connections, each waiting for an answer before the next request: closed loop). After a 0.5 s warm-up of " +
		"each, four 1.5 s rounds per contender; each round runs JWT, API key, bare and plain one after another, starting " +
		"with a different one each round. CPU per request is this process's (getrusage), the load process's (its " +
		"ProcessState), PostgreSQL's (the backends connected to the benchmark's databases, by pg_stat_activity, " +
		"read in /proc), Redis's (redis-server in /proc), and the rest of the machine's busy time (/proc/stat). Any " +
		"failed request fails the benchmark."},
	{"AddedLatency", "`router`. The plain handler's maximum rate is measured first, with the gateway's (closed " +
		"loop, two 1.5 s rounds each, plain-gateway-gateway-plain); then gateway (JWT), bare and plain are each " +
		"sent GET /api/agents at half that rate by `cmd/loadgen`, a process of its own, open loop: request i leaves at start + i ÷ rate whatever happened to the earlier ones, " +
		"and its latency counts from when it was due, so a stall shows as latency instead of slowing the sender. " +
		"After a 1 s warm-up of each, five independent runs of three 1.2 s rounds in which the three take turns, " +
		"each round starting with another. \"Added\" is the gateway's percentile minus the reference's: p50 and " +
		"the bare handler's p99 over all runs' requests, the plain handler's p99 run by run (issue 13 asks for 5 " +
		"of 5). Per round, this process (the servers) records its garbage-collection pauses, Go's scheduling " +
		"latency (runtime/metrics), the pool's empty acquires and their waits (pgxpool), the gateway's Redis calls " +
		"(a go-redis hook), a Redis PING and a catalog SELECT 1 probed every 10 ms, and the CPU of every process " +
		"as LoadGatewayVsBare does; the load process reports how late its own schedule sent each request."},
	{"MeteringOverhead", "`router`. Two gateways as production runs them, one metering every request and tenant query " +
		"(the usage meter and its pgx tracer), one without, each over its own databases with a pro tenant of 20 agents; " +
		"`cmd/loadgen` (a process of its own, 16 closed-loop connections) sends GET /api/agents with a session JWT in " +
		"eight alternated 1.5 s rounds (ABBA), after a 1 s warm-up of each."},
	{"AuditFleet", "`tenancy/audit`. 1,000 databases cloned from one migrated at the newest tenant schema, then audited " +
		"16 at a time: each read from the system catalogs in one round trip and compared with the expected " +
		"fingerprint, built once from the migrations on a scratch database (its time reported apart). Cloning is " +
		"not timed."},
	{"Export", "`tenancy/archive`. A tenant of about 100,000 rows over every tenant table, beside a neighbour, exported " +
		"from one REPEATABLE READ snapshot to a compressed, sealed archive; three runs, the mean per run."},
	{"Import", "`tenancy/archive`. The same archive verified and loaded as a new organization into another database, " +
		"every table read back and compared before the commit; three runs, the mean per run."},
	{"ThousandTenants", "`router`. 1,000 enterprise organizations, each with its own database copied from the " +
		"provisioner's template, behind one gateway with `pools.max_open=64` and `pools.max_total_conns` at the default 80 " +
		"or, when the server's max_connections is too small for that, three fifths of it (reported as the budget). " +
		"32 closed-loop clients in the benchmark's process send GET /api/agents for 15 s, each request for a tenant drawn uniformly (nearly " +
		"every request finds its pool evicted: each then opens a PostgreSQL connection, the worst case) or from a " +
		"Zipf distribution (s = 1.1: a hot few, as real traffic has). pg_stat_activity is sampled every 10 ms for the " +
		"gateway's connections (by application_name). Every answer but 200 counts as an error. The reference, after " +
		"each distribution's run and with the same distribution: 32 clients in the benchmark's process for 5 s, each " +
		"request a new pgx connection to the tenant's database, the plain handler's list query, and the close: the " +
		"rate at which the server sets sessions up, which bounds a gateway whose requests nearly all need one."},
	{"NoisyNeighbour", "`router`, contract plan limits, Redis rate limits. A quiet pro tenant sends GET /api/agents " +
		"open loop at 100 req/s (half its 200 rps), alone, and while a noisy tenant on the same shared database sends " +
		"ten times its own limit (starter: 500 req/s; pro: 2,000 req/s), which the gateway answers beyond the limit " +
		"with 429. Each tenant's client is a `cmd/loadgen` process of its own, as a tenant's client would be. " +
		"Ten alternating 4 s rounds of each kind; the quiet tenant's latencies of each kind are pooled. \"CPUs " +
		"busy\" is the whole machine (every process) from /proc/stat during those rounds; GC cycles are the gateway " +
		"process's."},
	{"Provision", "`provisioner`. RegisterDedicated + ProvisionDatabase: CREATE DATABASE … TEMPLATE (or empty, then " +
		"golang-migrate to the newest schema), grant to the application role, connect and query as that role, mark " +
		"ready. 20 databases each way; the server's template is made before the timed runs."},
	{"EnterpriseCreate", "`provisioner`. The real binary, built by the benchmark: `tenantgate provisioner` runs as a " +
		"process of its own; each create is `tenantgate tenants create --plan enterprise --wait` as a process, timed " +
		"from its start to its exit. The floor is `CREATE DATABASE … TEMPLATE <the provisioner's template>` over an " +
		"open superuser connection. Nine rounds, each of a floor, a single create, 10 concurrent creates, a " +
		"shared-plan create and `psql -c 'CREATE DATABASE …'`, each round starting with another; figures are " +
		"medians. A first create before the rounds makes the template (once per server)."},
	{"UpgradeToDedicated", "`provisioner`. The real binary as two processes, `serve` (the gateway) and " +
		"`provisioner`, sharing Redis as replicas do. Each round signs up a new organization over HTTP (free plan, " +
		"shared database), writes an agent, sends the Stripe webhook of its enterprise subscription, signed as " +
		"Stripe signs, and polls GET /api/organization every 2 ms until it answers placement dedicated and plan " +
		"enterprise; the first GET /api/agents after that must find the agent, and the clock stops at its answer. " +
		"The floor is the same as EnterpriseCreate's, measured in alternated rounds in the same run. Nine rounds; a " +
		"first upgrade before them makes the template."},
	{"FleetCreate", "`provisioner`. 1,000 enterprise tenants created by 10 loops at once, each running the real " +
		"binary's `tenants create --plan enterprise --wait` one tenant after another, against the real binary's " +
		"provisioner in another process. The bound is 1,000 × the floor (a bare CREATE DATABASE … TEMPLATE, median " +
		"of 5 rounds before and 5 after the fleet) ÷ the machine's cores: what PostgreSQL alone would need if every " +
		"core copied the template at once."},
	{"Fanout", "`provisioner/fanout`. 200 databases (the shared one and 199 dedicated) emptied, then migrated to the " +
		"newest tenant schema by the fan-out at concurrency 4 (staged: shared first). \"One\" is the mean of three runs " +
		"over one database alone; the bound is 200 × one ÷ 4. Then the same 200 migrated at concurrency 1 and 2. " +
		"\"CPUs busy\" is the whole machine from /proc/stat during the run."},
	{"Move100k", "`provisioner/move`. A shared tenant with 100,000 rows over every tenant table, next to a neighbour " +
		"of the same size, moved to a new dedicated database: fence, COPY from one snapshot, read-back verification, " +
		"switch, cleanup. The freeze runs from the placement marked moving (gateways refuse the tenant's writes) to the " +
		"cleanup step, which first unfences the target. Once with superuser-owned databases, once with databases " +
		"owned by a plain login role."},
	{"micro-benchmarks", "`tenancy/...`, `go test -bench . -benchtime 1s`: key and token verification, revocations, " +
		"placement cache, pool cache, tenant scope against the bare query, rate limiter, login throttle."},
}
