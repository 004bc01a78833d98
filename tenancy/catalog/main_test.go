package catalog_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that listeners and followers stop every goroutine they
// start.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
