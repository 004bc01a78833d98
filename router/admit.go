package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// rateLimit holds each organization to its plan's requests per second,
// across replicas when the limiter is Redis-backed. A limiter failure lets
// the request through: rate limits protect the service, they must not be
// the reason it is down.
func (s *server) rateLimit(c *fiber.Ctx) error {
	t, _ := tenantOf(c)
	rps := s.limits(t).RPS
	d, err := s.RateLimiter.Allow(c.UserContext(), t.Organization.ID, ratelimit.Limit{RPS: rps})
	if err != nil {
		s.Log.Warn("rate limiter failed; request admitted", "err", err)
		return c.Next()
	}
	for k, v := range ratelimit.Headers(d) {
		c.Set(k, v)
	}
	if !d.Allowed {
		s.Metrics.rateLimited.WithLabelValues(string(t.Organization.Plan)).Inc()
		return rateLimited(fmt.Sprintf("the organization's rate limit is exceeded: its plan allows %d requests per second; an upgrade lifts it", rps), d.RetryAfter)
	}
	return c.Next()
}

const idempotencyHeader = "Idempotency-Key"

// idempotent makes a POST with an Idempotency-Key run at most once per
// tenant and key: a retry with the same body gets the first answer again,
// the same key with another body is a conflict. Every final answer is kept
// (a 4xx too: the same request would get it again) except 5xx and 429,
// which say "try again" — the key is released so the retry runs.
func (s *server) idempotent(c *fiber.Ctx) error {
	key := c.Get(idempotencyHeader)
	if c.Method() != fiber.MethodPost || key == "" {
		return c.Next()
	}
	if len(key) > 255 || strings.IndexFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return tenancy.Errorf(tenancy.CodeInvalid, "Idempotency-Key: must be 1-255 visible ASCII characters")
	}
	key = strings.Clone(key)
	ctx := c.UserContext()
	t, _ := tenantOf(c)
	hash := requestHash(c)
	claimed, rec, err := s.Data.Idempotency.Claim(ctx, t, key, hash)
	if err != nil {
		return err
	}
	if !claimed {
		return replay(c, rec, hash)
	}
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	if status >= 500 || status == fiber.StatusTooManyRequests {
		return s.Data.Idempotency.Release(ctx, t, key)
	}
	return s.Data.Idempotency.Finish(ctx, t, key, status, bytes.Clone(c.Response().Body()))
}

func requestHash(c *fiber.Ctx) []byte {
	h := sha256.New()
	h.Write([]byte(c.Method() + " " + c.Path() + "\n"))
	h.Write(c.Body())
	return h.Sum(nil)
}

func replay(c *fiber.Ctx, rec tenantdb.Recorded, hash []byte) error {
	switch {
	case !bytes.Equal(rec.RequestHash, hash):
		return tenancy.Errorf(tenancy.CodeConflict, "Idempotency-Key: already used with a different request")
	case rec.Status == 0:
		return tenancy.Errorf(tenancy.CodeConflict, "Idempotency-Key: a request with this key is still running; retry shortly")
	}
	c.Set("Idempotent-Replayed", "true")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	body := rec.Response
	if rec.Status >= 400 {
		// An error names its request: the replay's, as X-Request-Id does.
		var e errorBody
		if json.Unmarshal(body, &e) == nil {
			e.RequestID = requestID(c)
			body, _ = json.Marshal(e)
		}
	}
	return c.Status(rec.Status).Send(body)
}
