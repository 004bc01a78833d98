package poolcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrBudgetExhausted wraps the context error of a dial that waited in vain
// for a connection token. It is not a connection error: the database is
// fine, this process is at its limit.
var ErrBudgetExhausted = errors.New("poolcache: connection budget exhausted")

const (
	// reclaimEvery is how often a waiting dial looks for idle connections
	// of other pools again: connections go idle all the time under load.
	reclaimEvery = 10 * time.Millisecond
	// hangupWait bounds how long closing a connection waits for the server
	// to end the session before giving its token back.
	hangupWait = time.Second
)

// budget is a FIFO counting semaphore of server connections. Waiters keep
// their place in line while they reclaim idle connections, so a dial waits
// for about (waiters ahead / connections freed per second), never forever
// behind luckier newcomers.
type budget struct {
	mu      sync.Mutex
	size    int
	used    int
	waiters list.List // of chan struct{}, closed when granted a token
	waits   int64     // takes that had to queue, for statistics
}

func newBudget(size int) *budget { return &budget{size: size} }

// take gets a token, calling reclaim while it waits.
func (b *budget) take(ctx context.Context, reclaim func()) error {
	b.mu.Lock()
	if b.used < b.size && b.waiters.Len() == 0 {
		b.used++
		b.mu.Unlock()
		return nil
	}
	granted := make(chan struct{})
	place := b.waiters.PushBack(granted)
	b.waits++
	b.mu.Unlock()

	tick := time.NewTicker(reclaimEvery)
	defer tick.Stop()
	for {
		select {
		case <-granted: // before reclaim, which would close a connection for nothing
			return nil
		default:
		}
		reclaim()
		select {
		case <-granted:
			return nil
		case <-ctx.Done():
			b.leave(place, granted)
			return fmt.Errorf("%w: %w", ErrBudgetExhausted, ctx.Err())
		case <-tick.C:
		}
	}
}

// leave takes a waiter out of line, passing on a token granted meanwhile.
func (b *budget) leave(place *list.Element, granted chan struct{}) {
	b.mu.Lock()
	select {
	case <-granted:
		b.mu.Unlock()
		b.give()
	default:
		b.waiters.Remove(place)
		b.mu.Unlock()
	}
}

// give returns a token, handing it straight to the first waiter if any.
func (b *budget) give() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if first := b.waiters.Front(); first != nil {
		b.waiters.Remove(first)
		close(first.Value.(chan struct{}))
		return
	}
	b.used--
}

// state returns the tokens in use and how many takes have queued so far.
func (b *budget) state() (used int, waits int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.waits
}

// connectKey marks the context of a connection attempt. pgconn dials with
// the same DialFunc for cancel requests, which must not wait for a token: a
// cancel request never becomes a session, and the connection it cancels
// holds a token until it completes, so a full budget would stall both.
type connectKey struct{}

// connectTagger is a pgx tracer whose only job is to set connectKey.
type connectTagger struct{}

var (
	_ pgx.ConnectTracer = connectTagger{}
	_ pgx.QueryTracer   = connectTagger{}
)

func (connectTagger) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	return context.WithValue(ctx, connectKey{}, true)
}
func (connectTagger) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}
func (connectTagger) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (connectTagger) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// dialer wraps next so that every session connection of e's pool holds a
// budget token from before its dial until its socket is closed.
func (c *Cache) dialer(e *entry, next pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ctx.Value(connectKey{}) == nil {
			return next(ctx, network, addr) // a cancel request
		}
		reclaim := func() { c.reclaimIdle(ctx, e) }
		if err := c.budget.take(ctx, reclaim); err != nil {
			return nil, err
		}
		give := c.budget.give
		if e.server != nil {
			// The process-wide token first, always in this order, so two
			// dials cannot each hold the token the other waits for.
			if err := e.server.take(ctx, reclaim); err != nil {
				c.budget.give()
				return nil, err
			}
			give = func() { e.server.give(); c.budget.give() }
		}
		conn, err := next(ctx, network, addr)
		if err != nil {
			give()
			return nil, err
		}
		return &budgetConn{Conn: conn, give: give}, nil
	}
}

// budgetConn gives its token back exactly once, when closed, whoever closes
// it: pgx after a failed handshake, a pool closing, a reclaim.
type budgetConn struct {
	net.Conn
	once sync.Once
	give func()
}

func (b *budgetConn) Close() error {
	err := net.ErrClosed
	b.once.Do(func() {
		b.awaitHangup()
		err = b.Conn.Close()
		b.give()
	})
	return err
}

// awaitHangup half-closes the socket and waits, briefly, for the server to
// close its end. A backend counts against the server's connections until it
// has seen our Terminate (or EOF) and exited; giving the token back before
// that would let a new session start while the old one is still there.
func (b *budgetConn) awaitHangup() {
	if hc, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = b.Conn.SetReadDeadline(time.Now().Add(hangupWait))
	_, _ = io.Copy(io.Discard, b.Conn)
}

// reclaimIdle closes one idle connection of another pool, which frees a
// token for the line of waiting dials. Dropped pools give first, then the
// least recently used, pinned pools last.
func (c *Cache) reclaimIdle(ctx context.Context, self *entry) {
	for _, p := range c.donors(self) {
		idle := p.AcquireAllIdle(ctx)
		if len(idle) == 0 {
			continue
		}
		victim := idle[0].Hijack()
		for _, conn := range idle[1:] {
			conn.Release()
		}
		_ = victim.Close(ctx)
		return
	}
}

func (c *Cache) donors(self *entry) []*pgxpool.Pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dropped, cached, pinned []*pgxpool.Pool
	for e := range c.live {
		if e != self && e.dropped {
			dropped = append(dropped, e.pool)
		}
	}
	for _, e := range c.lru.Values() { // oldest first
		if e != self {
			cached = append(cached, e.pool)
		}
	}
	for _, e := range c.pinned {
		if e != self {
			pinned = append(pinned, e.pool)
		}
	}
	return append(append(dropped, cached...), pinned...)
}
