package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestMain checks that serve and dev stop every goroutine they start.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, tenancytest.FasthttpLeaks...) }
