package move

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
)

// What the tests (package move_test, which imports the provisioner, which
// imports this package) need of the package's insides.

// Hooks are injected faults (see hooks).
type Hooks = hooks

// FailAfter makes Move fail after step, as on an error, undoing what it did.
func FailAfter(step string) *Hooks { return &hooks{failAfter: step} }

// CrashAfter makes Move stop dead after step, undoing nothing.
func CrashAfter(step string) *Hooks { return &hooks{crashAfter: step} }

// Tamper changes the target's copy, in its transaction, before it is verified.
func Tamper(fn func(ctx context.Context, tx pgx.Tx) error) *Hooks { return &hooks{tamper: fn} }

// WithHooks returns d with the faults h (nil: none).
func WithHooks(d Deps, h *Hooks) Deps {
	d.hooks = h
	return d
}

// The injected failures.
var (
	ErrInjected = errInjected
	ErrCrash    = errCrash
)

// TenantTables are the tables of tenant rows, parents first.
var TenantTables = tenantTables

// Fence fences the organization in db at epoch, as a move does before it copies.
func Fence(ctx context.Context, d Deps, orgID string, db tenancy.Database, epoch int64) error {
	return newMover(d, orgID, nil).fence(ctx, db, epoch, "")
}
