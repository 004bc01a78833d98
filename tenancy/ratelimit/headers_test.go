package ratelimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		d    Decision
		want map[string]string
	}{{
		name: "allowed",
		d:    Decision{Allowed: true, Limit: 5, Remaining: 4, ResetAfter: 200 * time.Millisecond},
		want: map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "4", "RateLimit-Reset": "1"},
	}, {
		name: "allowed, bucket full",
		d:    Decision{Allowed: true, Limit: 100, Remaining: 100},
		want: map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "100", "RateLimit-Reset": "0"},
	}, {
		name: "refused",
		d:    Decision{Limit: 5, RetryAfter: 200 * time.Millisecond, ResetAfter: time.Second},
		want: map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "1", "Retry-After": "1"},
	}, {
		name: "refused, rounded up",
		d:    Decision{Limit: 1, RetryAfter: 1500 * time.Millisecond, ResetAfter: 2*time.Second + time.Nanosecond},
		want: map[string]string{"RateLimit-Limit": "1", "RateLimit-Remaining": "0", "RateLimit-Reset": "3", "Retry-After": "2"},
	}, {
		name: "refused, Retry-After at least 1",
		d:    Decision{Limit: 5},
		want: map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "0", "Retry-After": "1"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, Headers(tc.d))
		})
	}
}
