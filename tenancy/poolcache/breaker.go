package poolcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantgate/tenantgate/tenancy"
)

// breaker is the failure record of one database, guarded by Cache.mu. A
// database without failures has none.
type breaker struct {
	failures int   // consecutive connection failures
	cause    error // the last of them
	// openUntil is when the open breaker next lets a probe through. Claiming
	// the probe pushes it a cooldown further, so only one probe runs at a
	// time, and a probe whose lease is never released cannot wedge the
	// breaker.
	openUntil time.Time
}

type breakerChange int

const (
	breakerSame breakerChange = iota
	breakerOpened
	breakerClosed
)

// admitLocked refuses a lease of an open breaker's database; halfOpen says
// that the cooldown is over and the lease would be the probe.
func (c *Cache) admitLocked(id string) (halfOpen bool, err error) {
	b := c.breakers[id]
	if b == nil || b.failures < c.cfg.BreakerThreshold {
		return false, nil
	}
	if wait := time.Until(b.openUntil); wait > 0 {
		cause := fmt.Errorf("poolcache: database %q: circuit open: %w", id, b.cause)
		return false, tenancy.Unavailable(cause, max(wait, time.Second))
	}
	return true, nil
}

func (c *Cache) claimProbeLocked(id string) {
	if b := c.breakers[id]; b != nil {
		b.openUntil = time.Now().Add(c.cfg.BreakerCooldown)
	}
}

// recordLocked counts a lease's outcome. While the breaker is open only the
// probe's outcome counts: leases admitted before it opened say nothing about
// the database now.
func (c *Cache) recordLocked(id string, probe, failed bool, err error) breakerChange {
	b := c.breakers[id]
	wasOpen := b != nil && b.failures >= c.cfg.BreakerThreshold
	if wasOpen && !probe {
		return breakerSame
	}
	if !failed {
		delete(c.breakers, id)
		if wasOpen {
			return breakerClosed
		}
		return breakerSame
	}
	if b == nil {
		b = &breaker{}
		c.breakers[id] = b
	}
	b.failures++
	b.cause = err
	if b.failures < c.cfg.BreakerThreshold {
		return breakerSame
	}
	b.openUntil = time.Now().Add(c.cfg.BreakerCooldown)
	return breakerOpened
}

// IsConnectionError reports whether err says that a database cannot be
// reached or cannot serve, as opposed to a failing statement: a connect
// error, a network error, or SQLSTATE class 08 (connection exception), 28
// (invalid authorization), 57P01-57P03 (shutdown, cannot connect now) or
// 3D000 (database does not exist).
//
// A connect error (pgconn.ConnectError) counts whatever its cause: a
// refused dial, a connect timeout, and every refusal by the server while
// connecting, such as 55000 (the database does not allow connections) and
// 42501 (CONNECT revoked), which on a statement would be other matters.
func IsConnectionError(err error) bool {
	if err == nil || errors.Is(err, ErrBudgetExhausted) {
		// A spent budget is this process's limit, not the database's fault.
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return connectionSQLState(pgErr.Code)
	}
	if pgconn.Timeout(err) {
		// pgconn wraps deadlines that expire during a statement: the
		// statement was slow, which is no sign of an unreachable database.
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// A bare deadline (itself a net.Error) is what a request gets when
		// it waited too long for a busy pool: one tenant's load must not
		// open the breaker of a database others share. A connect that
		// timed out is a ConnectError, counted above.
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

func connectionSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "28"):
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", "3D000":
		return true
	}
	return false
}
