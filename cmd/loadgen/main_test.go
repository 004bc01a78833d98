package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// server answers 201 to a POST with the expected body and header, 429 on
// /limited, 500 on /broken and 200 otherwise.
func server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/limited":
			w.WriteHeader(http.StatusTooManyRequests)
		case r.URL.Path == "/broken":
			w.WriteHeader(http.StatusInternalServerError)
		case r.Method == "POST":
			body, _ := io.ReadAll(r.Body)
			if string(body) != `{"a":1}` || r.Header.Get("Authorization") != "Key k" ||
				r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func load(t *testing.T, stdin io.Reader, args ...string) Result {
	t.Helper()
	var out, errs bytes.Buffer
	require.NoError(t, run(context.Background(), args, stdin, &out, &errs), errs.String())
	var r Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	return r
}

func TestClosed(t *testing.T) {
	t.Parallel()
	srv := server(t)
	r := load(t, nil, "-mode", "closed", "-workers", "4", "-duration", "200ms", "-method", "POST",
		"-url", srv.URL+"/x", "-auth", "Key k", "-body", `{"a":1}`)
	require.Positive(t, r.OK)
	require.Zero(t, r.Failed, r.FirstError)
	require.InDelta(t, 0.2, r.Seconds, 0.15)
	require.Empty(t, r.LatenciesMicros, "closed loop reports counts only")
}

func TestPaced(t *testing.T) {
	t.Parallel()
	srv := server(t)
	r := load(t, nil, "-mode", "paced", "-rate", "200", "-duration", "500ms", "-url", srv.URL)
	require.Zero(t, r.Failed, r.FirstError)
	require.InDelta(t, 100, r.OK, 10, "200 a second for half a second")
	require.Len(t, r.LatenciesMicros, r.OK)
	require.Len(t, r.SendLagsMicros, r.OK, "every request sent has its lag")
	for _, us := range r.SendLagsMicros {
		require.GreaterOrEqual(t, us, int64(0))
	}
	for _, us := range r.LatenciesMicros {
		require.Positive(t, us)
		require.Less(t, us, int64(time.Second/time.Microsecond))
	}
}

func TestToleratedAndFailed(t *testing.T) {
	t.Parallel()
	srv := server(t)
	r := load(t, nil, "-mode", "paced", "-rate", "100", "-duration", "200ms", "-url", srv.URL+"/limited", "-tolerate", "429")
	require.Positive(t, r.Tolerated)
	require.Zero(t, r.OK+r.Failed)

	r = load(t, nil, "-mode", "closed", "-workers", "1", "-duration", "50ms", "-url", srv.URL+"/broken")
	require.Positive(t, r.Failed)
	require.Contains(t, r.FirstError, "status 500")
}

func TestUntilStdinCloses(t *testing.T) {
	t.Parallel()
	srv := server(t)
	stdin, w := io.Pipe()
	time.AfterFunc(300*time.Millisecond, func() { w.Close() })
	start := time.Now()
	r := load(t, stdin, "-mode", "paced", "-rate", "100", "-duration", "0", "-url", srv.URL)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Positive(t, r.OK)
}

func TestRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"-url", "http://x", "-mode", "paced"},
		{"-url", "http://x", "-mode", "other"},
		{"-url", "http://x", "-workers", "0"},
		{"-url", "http://x", "extra"},
	} {
		var out, errs bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(""), &out, &errs)
		require.Error(t, err, "%q", args)
	}
}
