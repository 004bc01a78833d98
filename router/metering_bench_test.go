package router

import (
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
)

// BenchmarkMeteringOverhead measures what usage metering costs the
// gateway: GET /api/agents (20 agents, shared tenant, session JWT) through
// a gateway that meters every request and tenant query, against the same
// gateway without metering, in alternated rounds, from cmd/loadgen (16
// closed-loop connections, a process of its own). It reports both rates
// and metered ÷ unmetered (issue 16's target: ≥ 0.98).
//
//	go test -run '^$' -bench MeteringOverhead -benchtime 1x ./router/
func BenchmarkMeteringOverhead(b *testing.B) {
	metered := benchGateway(b, setupOptions{})
	unmetered := benchGateway(b, setupOptions{unmetered: true})
	load := buildLoadgen(b)
	urls := map[string]string{"metered": "http://" + serveApp(b, metered.app) + "/api/agents",
		"unmetered": "http://" + serveApp(b, unmetered.app) + "/api/agents"}
	auth := map[string]string{"metered": "Bearer " + metered.benchTenant(b, "meter-on", tenancy.PlanPro).token,
		"unmetered": "Bearer " + unmetered.benchTenant(b, "meter-off", tenancy.PlanPro).token}
	order := []string{"metered", "unmetered"}
	got := map[string]*stats{"metered": {}, "unmetered": {}}
	for b.Loop() {
		for _, k := range order {
			load.closed(b, target{url: urls[k], auth: auth[k]}, time.Second) // warm-up
		}
		for round := range 2 * loadRounds {
			k := order[round%2]
			if round%4 >= 2 { // ABBA: neither side always goes first
				k = order[1-round%2]
			}
			r := load.closed(b, target{url: urls[k], auth: auth[k]}, loadRound)
			got[k].add(stats{requests: r.OK, loadSeconds: r.Seconds})
		}
	}
	rates := map[string]float64{"metered": got["metered"].rate(), "unmetered": got["unmetered"].rate()}
	b.ReportMetric(rates["metered"], "metered-req/s")
	b.ReportMetric(rates["unmetered"], "unmetered-req/s")
	b.ReportMetric(rates["metered"]/rates["unmetered"], "metering-ratio")
	b.ReportMetric(0, "ns/op")
}
