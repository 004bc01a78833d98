package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

// Run is everything one `make bench` produced.
type Run struct {
	// Results by benchmark name without "Benchmark" and the -GOMAXPROCS
	// suffix ("LoadGatewayVsBare/shared-list"), in order of appearance.
	Results map[string]*Measured
	Order   []string
	// Commands are the values of the "command:" lines the Makefile writes
	// before each go test it runs; Loads the /proc/loadavg it wrote before
	// each ("" when it wrote none).
	Commands []string
	Loads    []string
	// Failures are go test's FAIL lines and the messages under them.
	Failures []string
	// Raw is the results again in the standard format, for the appendix.
	Raw string

	Date     time.Time
	Duration time.Duration // 0: unknown
	Machine  Machine
}

// Measured is one benchmark's figures, by unit as the benchmark reported
// it (ns/op, not benchfmt's tidied sec/op), averaged over its repeats.
type Measured struct {
	Name   string
	Pkg    string
	Values map[string]float64
	Units  []string // in the order reported
	counts map[string]int
}

// Value returns the figure reported in unit.
func (m *Measured) Value(unit string) (float64, bool) {
	if m == nil {
		return 0, false
	}
	v, ok := m.Values[unit]
	return v, ok
}

// parse reads benchmark output: results through benchfmt, and the
// Makefile's command lines and go test's failures line by line (benchfmt
// skips both).
func parse(r io.Reader, fileName string) (*Run, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	run := &Run{Results: map[string]*Measured{}}
	lines := bufio.NewScanner(bytes.NewReader(data))
	lines.Buffer(make([]byte, 0, 64*1024), 1<<20)
	inFailure := false
	load := ""
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "load: "):
			load = strings.TrimPrefix(line, "load: ")
		case strings.HasPrefix(line, "command: "):
			run.Commands = append(run.Commands, strings.TrimPrefix(line, "command: "))
			run.Loads = append(run.Loads, load)
			load, inFailure = "", false
		case strings.HasPrefix(line, "--- FAIL"), strings.HasPrefix(line, "FAIL\t"), strings.HasPrefix(line, "panic: "):
			run.Failures = append(run.Failures, line)
			inFailure = strings.HasPrefix(line, "--- FAIL")
		case inFailure && strings.HasPrefix(line, "    "):
			run.Failures = append(run.Failures, line)
		default:
			inFailure = false
		}
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}

	var raw bytes.Buffer
	w := benchfmt.NewWriter(&raw)
	br := benchfmt.NewReader(bytes.NewReader(data), fileName)
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // unit metadata, or a line that only looked like a result
		}
		if err := w.Write(res); err != nil {
			return nil, err
		}
		key := string(trimProcs(res.Name))
		m := run.Results[key]
		if m == nil {
			m = &Measured{Name: key, Pkg: res.GetConfig("pkg"), Values: map[string]float64{}, counts: map[string]int{}}
			run.Results[key] = m
			run.Order = append(run.Order, key)
		}
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" { // as reported: ns/op stays ns/op, peak-conns stays whole
				unit, val = v.OrigUnit, v.OrigValue
			}
			if _, seen := m.Values[unit]; !seen {
				m.Units = append(m.Units, unit)
			}
			n := m.counts[unit]
			m.Values[unit] = (m.Values[unit]*float64(n) + val) / float64(n+1)
			m.counts[unit] = n + 1
		}
	}
	if err := br.Err(); err != nil {
		return nil, err
	}
	run.Raw = raw.String()
	return run, nil
}

// trimProcs drops the -GOMAXPROCS suffix go test appends to a name.
func trimProcs(name benchfmt.Name) []byte {
	base, parts := name.Parts()
	out := slices.Clone(base)
	for _, p := range parts {
		if len(p) > 0 && p[0] == '-' {
			continue
		}
		out = append(out, p...)
	}
	return out
}

// Spec is one figure of the report: where to find it, and the target an
// issue set for it.
type Spec struct {
	Bench string // benchmark name without "Benchmark" and -GOMAXPROCS
	Unit  string // as the benchmark reports it
	Label string // what the figure is
	Issue int    // the issue that set the target (0: none)
	// Cmp is "≥", "≤", "<" or "="; empty: a figure without a target.
	Cmp    string
	Target float64
	// Ref, when set, names another unit of the same benchmark whose value
	// is the target (peak connections ≤ the budget the run used).
	Ref string
	// Scale and Suffix present the raw value: raw × Scale, then Suffix.
	Scale  float64
	Suffix string
	// Detail is shown next to the figure; {unit} is replaced by that
	// unit's value in the same benchmark.
	Detail string
	// Miss says, for a missed target, why and what would fix it.
	Miss string
}

// Row is a Spec with what the run measured.
type Row struct {
	Spec
	Value   float64
	Have    bool // the benchmark reported the figure
	Bound   float64
	HasRef  bool // the Ref figure was reported
	Met     bool
	Context string // Detail filled in
}

// evaluate measures every spec against the run.
func evaluate(run *Run, specs []Spec) []Row {
	rows := make([]Row, 0, len(specs))
	for _, s := range specs {
		m := run.Results[s.Bench]
		r := Row{Spec: s, Bound: s.Target}
		r.Value, r.Have = m.Value(s.Unit)
		r.HasRef = s.Ref == ""
		if s.Ref != "" {
			r.Bound, r.HasRef = m.Value(s.Ref)
		}
		r.Met = r.Have && r.HasRef && compare(r.Value, s.Cmp, r.Bound)
		r.Context = fillDetail(s.Detail, m)
		r.Miss = fillDetail(s.Miss, m)
		rows = append(rows, r)
	}
	return rows
}

func compare(v float64, cmp string, bound float64) bool {
	switch cmp {
	case "≥":
		return v >= bound
	case "≤":
		return v <= bound
	case "<":
		return v < bound
	case "=":
		return v == bound
	}
	return true // no target
}

func fillDetail(detail string, m *Measured) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(detail, '{')
		end := strings.IndexByte(detail, '}')
		if open < 0 || end < open {
			b.WriteString(detail)
			return b.String()
		}
		b.WriteString(detail[:open])
		if v, ok := m.Value(detail[open+1 : end]); ok {
			b.WriteString(num(v))
		} else {
			b.WriteString("?")
		}
		detail = detail[end+1:]
	}
}

// tally counts targets met and targets in the report.
func tally(rows []Row) (met, total int) {
	for _, r := range rows {
		if r.Cmp == "" {
			continue
		}
		total++
		if r.Met {
			met++
		}
	}
	return met, total
}

// num formats a figure with the precision it deserves.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.01:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func (s Spec) show(v float64) string {
	scale := s.Scale
	if scale == 0 {
		scale = 1
	}
	out := num(v * scale)
	if s.Suffix != "" {
		out += " " + s.Suffix
	}
	return out
}

func (r Row) measured() string {
	if !r.Have {
		return "not measured"
	}
	out := r.show(r.Value)
	if r.Context != "" {
		out += " (" + r.Context + ")"
	}
	return out
}

func (r Row) target() string {
	if r.Cmp == "" {
		return "—"
	}
	if r.Ref != "" {
		if !r.HasRef {
			return r.Cmp + " " + r.Ref + " (not reported)"
		}
		return r.Cmp + " " + r.show(r.Bound) + " (" + r.Ref + ")"
	}
	return r.Cmp + " " + r.show(r.Bound)
}

func (r Row) verdict() string {
	switch {
	case r.Cmp == "":
		return ""
	case !r.Have:
		return "**not measured**"
	case r.Met:
		return "met"
	}
	return "**missed**"
}

func issue(n int) string {
	if n == 0 {
		return ""
	}
	return "#" + strconv.Itoa(n)
}

// render writes the report.
func render(w io.Writer, run *Run, rows []Row) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	met, total := tally(rows)
	p("# tenantgate benchmarks\n\n")
	p("Written by `make bench` (`cmd/benchreport`) from a run that ended %s", run.Date.UTC().Format("2006-01-02 15:04 MST"))
	if run.Duration > 0 {
		p(" and took %s", run.Duration)
	}
	p(". Do not edit by hand: run `make bench` again.\n\n")
	p("**%d of %d targets met.** Every figure is from this one run; nothing is copied from earlier runs.\n\n", met, total)

	p("## Machine\n\n")
	mc := run.Machine
	p("| | |\n|---|---|\n")
	p("| CPU | %s, %d cores (vCPUs) |\n", mc.CPU, mc.Cores)
	p("| memory | %s |\n", mc.Memory)
	p("| OS | %s |\n", mc.OS)
	p("| Go | %s |\n", mc.Go)
	p("| PostgreSQL | %s |\n", mc.Postgres)
	p("| Redis | %s |\n\n", mc.Redis)
	p("The load client, the gateway, PostgreSQL and Redis all run on this one machine and share its cores. The " +
		"client is a process of its own (`cmd/loadgen`; only `ThousandTenants` drives the gateway from the " +
		"benchmark's process), so its CPU time and garbage collection are not the gateway's, but it takes its share " +
		"of the same cores: the load benchmarks report how much. Loopback only: no network latency.\n\n")

	p("## Commands\n\n```\nmake bench\n```\n\nwhich runs, one after another (never two benchmarks at once):\n\n```\n")
	for _, c := range run.Commands {
		p("%s\n", c)
	}
	p("go run ./cmd/benchreport -in bench.out -out BENCHMARKS.md\n```\n\n")
	if slices.ContainsFunc(run.Loads, func(l string) bool { return l != "" }) {
		p("Load average (1, 5, 15 min, from /proc/loadavg) just before each: ")
		for i, l := range run.Loads {
			if i > 0 {
				p("; ")
			}
			f := strings.Fields(l)
			p("%s", strings.Join(f[:min(3, len(f))], " "))
		}
		p(". These include the benchmarks' own load (they keep both cores busy and run dozens of PostgreSQL backends); " +
			"other sessions on the machine may run at the same time, and the CPU figures of the latency benchmarks count every process.\n\n")
	}

	p("## Figures against their targets\n\n")
	p("| figure | benchmark | measured | target | issue | result |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Cmp == "" {
			continue
		}
		p("| %s | `%s` | %s | %s | %s | %s |\n", r.Label, r.Bench, r.measured(), r.target(), issue(r.Issue), r.verdict())
	}
	p("\n")

	var misses []Row
	for _, r := range rows {
		if r.Cmp != "" && !r.Met {
			misses = append(misses, r)
		}
	}
	if len(misses) > 0 {
		p("## Missed targets: why, and what would fix them\n\n")
		for _, r := range misses {
			p("- **%s** (`%s`): %s against %s. ", r.Label, r.Bench, r.measured(), r.target())
			switch {
			case !r.Have:
				p("The benchmark did not report it: it failed or did not run (see Failures).\n")
			case r.Miss != "":
				p("%s\n", r.Miss)
			default:
				p("No cause is recorded for this miss in cmd/benchreport: treat the figure as unexplained until someone investigates it.\n")
			}
		}
		p("\n")
	}

	p("## Other figures (no target of their own)\n\n")
	p("| figure | benchmark | measured |\n|---|---|---|\n")
	for _, r := range rows {
		if r.Cmp == "" {
			p("| %s | `%s` | %s |\n", r.Label, r.Bench, r.measured())
		}
	}
	p("\n")

	p("## How each is measured\n\n")
	for _, n := range notes {
		p("- **`%s`** — %s\n", n.bench, n.text)
	}
	p("\n")

	if len(run.Failures) > 0 {
		p("## Failures\n\n```\n%s\n```\n\n", strings.Join(run.Failures, "\n"))
	}

	p("## Raw results\n\nAs `go test -bench` printed them (benchstat reads this block):\n\n```\n%s```\n", run.Raw)
}
