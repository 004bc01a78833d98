package catalog

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listener keeps one connection LISTENing on some of the catalog's
// notification channels (JobsChannel, JobChannel) and wakes its owner on
// each notification. The connection is its own (a LISTEN belongs to a
// session: see ListenConn); when it breaks (a catalog restart, a
// terminated backend) the Listener connects again with backoff.
//
// A notification is a hint and may be lost: those sent while no
// connection listened are gone. So after each (re)connection the Listener
// wakes its owner too, and the owner does one catch-up read (a claim, a
// job's re-read) as if it had been notified; it also keeps a slow poll.
// This is how River treats its notifications: they only shorten waits,
// and correctness never depends on one arriving. The provisioner's worker
// listens for new jobs with one, and FollowJob for a job's changes.
type Listener struct {
	connect  func(context.Context) (*pgx.Conn, error)
	channels []string
	log      *slog.Logger
	wake     chan struct{}
	// MinBackoff and MaxBackoff bound the wait before connecting again
	// after a failure: it starts at MinBackoff (default 100 ms) and doubles
	// up to MaxBackoff (default 5 s), with a fifth of jitter so that a
	// fleet of provisioners does not reconnect in step.
	MinBackoff, MaxBackoff time.Duration
	// Ping is how long a quiet connection waits before it is checked with
	// a round trip (default 30 s): a peer that vanished without closing
	// the connection would otherwise leave the Listener deaf forever.
	Ping time.Duration
}

// NewListener returns a Listener on channels whose connections come from
// connect; log (nil: none) hears about failures.
func NewListener(connect func(context.Context) (*pgx.Conn, error), log *slog.Logger, channels ...string) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{connect: connect, channels: channels, log: log, wake: make(chan struct{}, 1),
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Ping: 30 * time.Second}
}

// Wake receives a value after notifications and after each (re)connection.
// Wake-ups coalesce: several notifications before the owner looks give one
// value, so the owner must read everything there is (claim until none).
func (l *Listener) Wake() <-chan struct{} { return l.wake }

func (l *Listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Run listens until ctx ends, then closes its connection. Its caller owns
// it: run it in a goroutine and wait for it after cancelling ctx.
func (l *Listener) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		connected, err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			failures = 0
		}
		wait := l.backoff(failures)
		failures++
		l.log.Warn("catalog notifications: connection lost; polling until it is back",
			"channels", l.channels, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// backoff is the wait before the reconnection after failures failed ones.
func (l *Listener) backoff(failures int) time.Duration {
	d := l.MinBackoff << min(failures, 16)
	if d <= 0 || d > l.MaxBackoff {
		d = l.MaxBackoff
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// session connects, listens and wakes the owner for each notification until
// the connection fails or ctx ends. connected says whether it got as far as
// listening.
func (l *Listener) session(ctx context.Context) (connected bool, err error) {
	conn, err := l.connect(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		// Bounded: a peer that vanished does not answer the goodbye.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	for _, ch := range l.channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, err
		}
	}
	// Whatever was sent while no connection listened is lost: the owner
	// reads once now as if it had been told.
	l.signal()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, l.Ping)
		_, err := conn.WaitForNotification(waitCtx)
		quiet := waitCtx.Err() != nil
		cancel()
		switch {
		case err == nil:
			l.signal()
		case ctx.Err() != nil:
			return true, nil
		case quiet:
			if err := conn.Ping(ctx); err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}
