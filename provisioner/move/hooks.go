package move

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// hooks inject faults for the tests: a failure or a crash after a step, a
// change to the copy before it is verified. Deps carries them unexported,
// so only this package's tests can set them.
type hooks struct {
	// failAfter names the step after which Move fails as on an error, and
	// undoes what it did.
	failAfter string
	// crashAfter names the step after which Move stops dead, undoing
	// nothing, as a killed process would.
	crashAfter string
	// tamper changes the target's copy, in its transaction, before it is
	// verified.
	tamper func(ctx context.Context, tx pgx.Tx) error
}

var (
	errInjected = errors.New("move: injected failure")
	errCrash    = errors.New("move: injected crash")
)

// hook returns the fault injected after step, if any.
func (m *mover) hook(_ context.Context, step string) error {
	switch h := m.hooks; {
	case h == nil:
		return nil
	case h.crashAfter == step:
		return errCrash
	case h.failAfter == step:
		return errInjected
	}
	return nil
}

// tamper runs the tamper hook on the target's copy transaction.
func (m *mover) tamper(ctx context.Context, tx pgx.Tx) error {
	if m.hooks == nil || m.hooks.tamper == nil {
		return nil
	}
	return m.hooks.tamper(ctx, tx)
}
