package provisioner

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that workers and their listeners stop every goroutine
// they start. (The listener itself and its tests moved to tenancy/catalog:
// this file keeps only the package's TestMain.)
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
