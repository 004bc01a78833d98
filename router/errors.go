package router

import (
	"errors"
	"log/slog"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
)

// statusOf is the one map from error code to HTTP status.
var statusOf = map[tenancy.Code]int{
	tenancy.CodeInvalid:           fiber.StatusBadRequest,
	tenancy.CodeUnauthorized:      fiber.StatusUnauthorized,
	tenancy.CodePlanLimit:         fiber.StatusPaymentRequired,
	tenancy.CodePaymentRequired:   fiber.StatusPaymentRequired,
	tenancy.CodeForbidden:         fiber.StatusForbidden,
	tenancy.CodePending:           fiber.StatusForbidden,
	tenancy.CodeSuspended:         fiber.StatusForbidden,
	tenancy.CodeNotFound:          fiber.StatusNotFound,
	tenancy.CodeConflict:          fiber.StatusConflict,
	tenancy.CodeTooLarge:          fiber.StatusRequestEntityTooLarge,
	tenancy.CodeRateLimited:       fiber.StatusTooManyRequests,
	tenancy.CodeTenantUnavailable: fiber.StatusServiceUnavailable,
	tenancy.CodeInternal:          fiber.StatusInternalServerError,
}

// fiberCodes maps the errors Fiber and fasthttp raise themselves (unknown
// route, body over the limit, …) to the contract's codes.
var fiberCodes = map[int]*tenancy.Error{
	fiber.StatusNotFound:                    {Code: tenancy.CodeNotFound, Message: "no such route"},
	fiber.StatusMethodNotAllowed:            {Code: tenancy.CodeNotFound, Message: "no such route"},
	fiber.StatusRequestEntityTooLarge:       {Code: tenancy.CodeTooLarge, Message: "request body is larger than 1 MiB"},
	fiber.StatusRequestHeaderFieldsTooLarge: {Code: tenancy.CodeTooLarge, Message: "request headers are too large"},
	fiber.StatusRequestTimeout:              {Code: tenancy.CodeInvalid, Message: "request timed out"},
}

type errorBody struct {
	Error struct {
		Code    tenancy.Code `json:"code"`
		Message string       `json:"message"`
	} `json:"error"`
	RequestID string `json:"requestId"`
}

// errorHandler writes every error in the contract's shape. Unknown errors
// are 500 "internal" and their details go only to the log.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		te := toTenancyError(err)
		if te.Code == tenancy.CodeInternal {
			log.ErrorContext(c.UserContext(), "internal error", "err", err, "requestId", requestID(c), "path", c.Path())
		}
		status, ok := statusOf[te.Code]
		if !ok {
			status = fiber.StatusInternalServerError
		}
		if te.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(te.RetryAfter.Seconds()))))
		}
		var body errorBody
		body.Error.Code, body.Error.Message, body.RequestID = te.Code, te.Message, requestID(c)
		return c.Status(status).JSON(body)
	}
}

func toTenancyError(err error) *tenancy.Error {
	var te *tenancy.Error
	if errors.As(err, &te) {
		if te.Code == tenancy.CodeInternal || statusOf[te.Code] == 0 {
			return &tenancy.Error{Code: tenancy.CodeInternal, Message: "internal error"}
		}
		return te
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		if mapped, ok := fiberCodes[fe.Code]; ok {
			return mapped
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return &tenancy.Error{Code: tenancy.CodeInvalid, Message: fe.Message}
		}
	}
	return &tenancy.Error{Code: tenancy.CodeInternal, Message: "internal error"}
}
