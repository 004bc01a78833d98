package tenancy

import (
	"errors"
	"fmt"
	"time"
)

// Code is a machine-readable error code of the public contract.
type Code string

// Codes of CONTRACT §3. Internal is never shown to a client with its details.
const (
	CodeInvalid           Code = "invalid_request"
	CodeUnauthorized      Code = "unauthorized"
	CodePlanLimit         Code = "plan_limit_reached"
	CodePaymentRequired   Code = "payment_required"
	CodeForbidden         Code = "forbidden"
	CodePending           Code = "organization_pending"
	CodeSuspended         Code = "organization_suspended"
	CodeNotFound          Code = "not_found"
	CodeConflict          Code = "conflict"
	CodeTooLarge          Code = "payload_too_large"
	CodeRateLimited       Code = "rate_limited"
	CodeTenantUnavailable Code = "tenant_unavailable"
	CodeInternal          Code = "internal"
)

// Error is the one error type of tenantgate. Code and Message are safe to
// show to a client; Err keeps the cause for logs and errors.Is.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when set, tells the client when to try again (429, 503).
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with a formatted client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error with code and message that keeps err as its cause.
func Wrap(err error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrNotFound is the answer for anything the caller may not see: a missing
// object and another tenant's object look the same.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// Unavailable reports that a tenant's database cannot serve now.
func Unavailable(err error, retryAfter time.Duration) *Error {
	return &Error{
		Code:       CodeTenantUnavailable,
		Message:    "the organization's data is temporarily unavailable; retry later",
		RetryAfter: retryAfter,
		Err:        err,
	}
}
