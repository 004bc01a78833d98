package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// MaxIdempotencyKey is the longest Idempotency-Key accepted.
const MaxIdempotencyKey = 255

// CheckIdempotencyKey refuses keys that are not 1-255 visible ASCII characters.
func CheckIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey || strings.IndexFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return tenancy.Errorf(tenancy.CodeInvalid, "Idempotency-Key: must be 1-255 visible ASCII characters")
	}
	return nil
}

// principal names who sent a request: a key belongs to the principal that
// used it, so the same key from another user or API key is another key.
func principal(id tenancy.Identity) string {
	if id.KeyID != "" {
		return "key:" + id.KeyID
	}
	return "user:" + id.UserID
}

// once runs an operation at most once per (organization, principal,
// Idempotency-Key), and must be called after the operation's authorization:
// a replay is authorized like a first request. Without a key it just runs.
//
// The answer is stored and replayed to a retry with the same request: a
// success as redact leaves it (no secret is ever stored, so a replay never
// shows one), a final error (4xx) as its code and message. The same key
// with another request is a conflict. An error worth retrying (5xx, 429)
// releases the key, so the retry runs: operations fail before their first
// write, or, where a second store is written after the first, the retry
// converges (see each operation).
func once[T any](ctx context.Context, s *Service, c *Call, op string, req any, run func() (T, error), redact func(T) T) (T, error) {
	var zero T
	if c.IdempotencyKey == "" {
		return run()
	}
	if err := CheckIdempotencyKey(c.IdempotencyKey); err != nil {
		return zero, err
	}
	fp, err := s.fingerprint(op, req)
	if err != nil {
		return zero, err
	}
	t, key := c.Tenant, principal(c.Identity)+":"+c.IdempotencyKey
	claimed, rec, err := s.Data.Idempotency.Claim(ctx, t, key, fp)
	if err != nil {
		return zero, err
	}
	if !claimed {
		return replay[T](c, rec, fp)
	}
	out, err := run()
	if err != nil && !final(err) {
		if rerr := s.Data.Idempotency.Release(context.WithoutCancel(ctx), t, key); rerr != nil {
			s.Log.Warn("releasing an idempotency key failed; it is given up after a minute", "err", rerr)
		}
		return out, err
	}
	status, stored := statusOK, any(out)
	if err != nil {
		status, stored = statusError, storedError{Error: errorOf(err)}
	} else if redact != nil {
		stored = redact(out)
	}
	raw, merr := json.Marshal(stored)
	if merr == nil {
		merr = s.Data.Idempotency.Finish(context.WithoutCancel(ctx), t, key, status, raw)
	}
	if merr != nil {
		// The operation is done; a retry finds the claim running (409)
		// until it is given up, and is never run twice by our doing.
		s.Log.Warn("recording an idempotent answer failed", "op", op, "err", merr)
	}
	return out, err
}

// Stored answers: a success (any status under 300, as records written by
// earlier versions have 200 or 201) holds the result's JSON; an error
// (300 and over) holds its code and message.
const (
	statusOK    = 200
	statusError = 400
)

type storedError struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Code    tenancy.Code `json:"code"`
	Message string       `json:"message"`
}

// final reports whether err is an answer the same request would get again
// (a 4xx): it is kept and replayed. Failures worth retrying — internal,
// the tenant unavailable, rate limited — release the key instead.
func final(err error) bool {
	switch tenancy.ErrorCode(err) {
	case tenancy.CodeInternal, tenancy.CodeTenantUnavailable, tenancy.CodeRateLimited:
		return false
	}
	return true
}

func errorOf(err error) (e errorFields) {
	var te *tenancy.Error
	if errors.As(err, &te) {
		e.Code, e.Message = te.Code, te.Message
	}
	return e
}

func replay[T any](c *Call, rec tenantdb.Recorded, fp []byte) (T, error) {
	var out T
	switch {
	case !hmac.Equal(rec.RequestHash, fp):
		return out, tenancy.Errorf(tenancy.CodeConflict, "Idempotency-Key: already used with a different request")
	case rec.Status == 0:
		return out, tenancy.Errorf(tenancy.CodeConflict, "Idempotency-Key: a request with this key is still running; retry shortly")
	}
	c.Replayed = true
	if rec.Status >= 300 {
		var e storedError
		if err := json.Unmarshal(rec.Response, &e); err != nil {
			return out, err
		}
		return out, &tenancy.Error{Code: e.Error.Code, Message: e.Error.Message}
	}
	return out, json.Unmarshal(rec.Response, &out)
}

// fingerprint is an HMAC of the operation and its decoded request under the
// server's key: requests carrying a password or a key's name can be
// compared without storing anything an attacker could test guesses against.
func (s *Service) fingerprint(op string, req any) ([]byte, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, s.IdempotencySecret)
	m.Write([]byte(op))
	m.Write([]byte{0})
	m.Write(raw)
	return m.Sum(nil), nil
}
