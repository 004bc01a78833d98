package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestMain checks that serve and dev stop every goroutine they start.
//
// With asCommandEnv set to 1, the test binary is the tenantgate command
// instead: it runs its arguments as main does, so that the drills can run
// a real process and kill it (see startCommand in drills_test.go).
func TestMain(m *testing.M) {
	if os.Getenv(asCommandEnv) == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m, tenancytest.FasthttpLeaks...)
}
