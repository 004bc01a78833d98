package ratelimit

import (
	"strconv"
	"time"
)

// Headers returns the response headers for d, per the IETF draft
// "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers,
// the revisions with separate fields): RateLimit-Limit, RateLimit-Remaining
// and RateLimit-Reset, plus Retry-After when d refused the request.
//
// Times are whole seconds rounded up, because a client that comes back a
// fraction early is refused again. Retry-After is at least 1: "0" would
// invite an immediate retry that cannot succeed.
func Headers(d Decision) map[string]string {
	h := map[string]string{
		"RateLimit-Limit":     strconv.Itoa(d.Limit),
		"RateLimit-Remaining": strconv.Itoa(d.Remaining),
		"RateLimit-Reset":     strconv.FormatInt(ceilSeconds(d.ResetAfter), 10),
	}
	if !d.Allowed {
		h["Retry-After"] = strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10)
	}
	return h
}

func ceilSeconds(d time.Duration) int64 {
	return int64((max(d, 0) + time.Second - 1) / time.Second)
}
