package router

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, tenancytest.FasthttpLeaks...) }
