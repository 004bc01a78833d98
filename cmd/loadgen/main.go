// Command loadgen is the router benchmarks' load client: it sends HTTP
// requests from a process of its own, so that its CPU time and garbage
// collection do not land in the figures of the server it measures, and
// prints what it got as one JSON object on standard output. It is a tool
// of the benchmarks, not part of tenantgate.
//
// Two modes:
//
//	loadgen -mode closed -workers 16 -duration 2s -url URL
//
// keeps -workers keep-alive connections busy, each sending its next request
// when the answer to the last one is in, and reports the requests answered
// and their rate;
//
//	loadgen -mode paced -rate 3000 -duration 2s -url URL
//
// sends request i at start + i ÷ rate whatever happened to the earlier
// ones (open loop) and reports every answered request's latency, counted
// from when the request was due, so a stall of the server shows as latency
// instead of slowing the sender. With -duration 0 it runs until its
// standard input closes.
//
// Any status but 200 and 201 counts as failed, except -tolerate (a 429 the
// benchmark provokes on purpose), counted apart.
//
// The client is fasthttp's rather than net/http's: it reuses its request
// and response objects and allocates almost nothing per request, so it
// takes less of the machine's CPU from the server it drives (the server
// under test, Fiber, is fasthttp too).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

// Result is what loadgen prints.
type Result struct {
	// OK counts answers 200 and 201, Tolerated answers with the tolerated
	// status, Failed everything else (other statuses and transport errors).
	OK, Tolerated, Failed int
	// FirstError describes the first failure, for the benchmark's message.
	FirstError string `json:",omitempty"`
	// Seconds is how long the load ran: from its start to the last answer.
	Seconds float64
	// Started is when the load started, in Unix nanoseconds.
	Started int64
	// LatenciesMicros are the paced mode's latencies of the OK answers, in
	// microseconds from when each request was due (not in sending order).
	LatenciesMicros []int64 `json:",omitempty"`
	// SendLagsMicros are, in paced mode, how late the schedule handed each
	// request to a worker after it was due, in microseconds: a part of its
	// latency that is this process's own (its timer, its wait for a CPU),
	// not the server's. (Waiting for a free worker, when inFlight requests
	// are all unanswered, is the server's, and is not in it.)
	SendLagsMicros []int64 `json:",omitempty"`
}

// request is one request's fixed parts.
type request struct {
	method, url, auth, body string
	tolerate                int
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "closed", "closed (workers in a loop) or paced (open loop at -rate)")
	var r request
	fs.StringVar(&r.method, "method", "GET", "HTTP method")
	fs.StringVar(&r.url, "url", "", "URL to send to (required)")
	fs.StringVar(&r.auth, "auth", "", "Authorization header, if any")
	fs.StringVar(&r.body, "body", "", "request body, sent as application/json")
	fs.IntVar(&r.tolerate, "tolerate", 0, "a status counted apart instead of as failed (0: none)")
	workers := fs.Int("workers", 16, "closed: connections in use; paced: most requests in flight at once")
	rate := fs.Float64("rate", 0, "paced: requests per second")
	duration := fs.Duration("duration", 2*time.Second, "how long to send; 0: until standard input closes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case r.url == "":
		return errors.New("-url is required")
	case *workers < 1:
		return errors.New("-workers must be at least 1")
	case *mode == "paced" && *rate <= 0:
		return errors.New("-rate must be positive in paced mode")
	case *mode != "paced" && *mode != "closed":
		return fmt.Errorf("-mode %q: want closed or paced", *mode)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	} else {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	client := &fasthttp.Client{
		MaxConnsPerHost:          *workers,
		ReadTimeout:              5 * time.Second,
		WriteTimeout:             5 * time.Second,
		NoDefaultUserAgentHeader: true,
	}
	defer client.CloseIdleConnections()
	var res Result
	if *mode == "closed" {
		res = closed(ctx, client, r, *workers)
	} else {
		res = paced(ctx, client, r, *workers, *rate)
	}
	return json.NewEncoder(stdout).Encode(res)
}

// tally is one worker's counts.
type tally struct {
	ok, tolerated, failed int
	firstError            string
	lat                   []int64
}

// send sends one request and counts its outcome; it reports whether the
// answer was OK.
func (t *tally) send(client *fasthttp.Client, r request, req *fasthttp.Request, res *fasthttp.Response) bool {
	req.Reset()
	req.Header.SetMethod(r.method)
	req.SetRequestURI(r.url)
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(r.body)
	}
	err := client.Do(req, res)
	status := res.StatusCode()
	switch {
	case err == nil && (status == fasthttp.StatusOK || status == fasthttp.StatusCreated):
		t.ok++
		return true
	case err == nil && status == r.tolerate:
		t.tolerated++
	default:
		t.failed++
		if t.firstError == "" {
			if err != nil {
				t.firstError = err.Error()
			} else {
				t.firstError = fmt.Sprintf("status %d: %.200s", status, res.Body())
			}
		}
	}
	return false
}

// closed runs workers loops of request and answer until ctx ends.
func closed(ctx context.Context, client *fasthttp.Client, r request, workers int) Result {
	start := time.Now()
	tallies := make([]tally, workers)
	var wg sync.WaitGroup
	for w := range tallies {
		wg.Go(func() {
			req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for ctx.Err() == nil {
				tallies[w].send(client, r, req, res)
			}
		})
	}
	wg.Wait()
	return sum(start, tallies)
}

// paced sends requests at rate until ctx ends, each due at start + i ÷
// rate and timed from then, with at most inFlight of them waiting for an
// answer at once (many more than a half-loaded server keeps busy, so the
// sender does not wait for a free worker unless the server stalls).
func paced(ctx context.Context, client *fasthttp.Client, r request, inFlight int, rate float64) Result {
	due := make(chan time.Time, 1<<16)
	tallies := make([]tally, inFlight)
	var wg sync.WaitGroup
	for w := range tallies {
		wg.Go(func() {
			t := &tallies[w]
			req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for at := range due {
				if t.send(client, r, req, res) {
					t.lat = append(t.lat, time.Since(at).Microseconds())
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var lags []int64
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait) // at most one interval: cheaper than a timer and a select per request
		}
		if ctx.Err() != nil {
			break
		}
		lags = append(lags, time.Since(at).Microseconds())
		due <- at
	}
	close(due)
	wg.Wait()
	res := sum(start, tallies)
	res.SendLagsMicros = lags
	return res
}

func sum(start time.Time, tallies []tally) Result {
	res := Result{Seconds: time.Since(start).Seconds(), Started: start.UnixNano()}
	for _, t := range tallies {
		res.OK += t.ok
		res.Tolerated += t.tolerated
		res.Failed += t.failed
		res.LatenciesMicros = append(res.LatenciesMicros, t.lat...)
		if res.FirstError == "" {
			res.FirstError = t.firstError
		}
	}
	return res
}
