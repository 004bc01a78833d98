// Command benchreport turns the output of `make bench` (the standard
// `go test -bench` format, read with golang.org/x/perf/benchfmt) into
// BENCHMARKS.md: the machine, the date, the commands that ran, and every
// figure next to its target from the issues, met or missed, with why and
// what would fix it where it was missed.
//
//	go run ./cmd/benchreport -in bench.out -out BENCHMARKS.md -started UNIXTIME
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "bench.out", "benchmark output (go test -bench format)")
	out := fs.String("out", "BENCHMARKS.md", "report to write")
	started := fs.Int64("started", 0, "Unix time the benchmark run started (0: unknown); the report states how long it took")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	run, err := parse(f, *in)
	if err != nil {
		return err
	}
	// The run ended when its output was last written: a report written
	// again later from the same file keeps the run's date and duration.
	info, err := f.Stat()
	if err != nil {
		return err
	}
	run.Date = info.ModTime()
	if *started > 0 {
		run.Duration = run.Date.Sub(time.Unix(*started, 0)).Round(time.Second)
	}
	run.Machine = describeMachine(ctx, getenv)
	rows := evaluate(run, targets)
	var buf bytes.Buffer
	render(&buf, run, rows)
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	met, measured := tally(rows)
	fmt.Fprintf(stdout, "benchreport: wrote %s: %d of %d targets met (%d results, %d failures)\n",
		*out, met, measured, len(run.Results), len(run.Failures))
	if len(run.Results) == 0 {
		return errors.New("no benchmark results in " + *in)
	}
	if len(run.Failures) > 0 {
		return fmt.Errorf("%d failure lines in %s: see the Failures section of %s", len(run.Failures), *in, *out)
	}
	return nil
}
