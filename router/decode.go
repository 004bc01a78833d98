package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
)

// serverOwned are fields a client may never set; sending one is a 400 that
// names it, not a silent drop.
var serverOwned = []string{"id", "organizationId", "createdAt", "updatedAt", "deletedAt", "plan", "usage", "status"}

// decode reads the request body strictly into dst: one JSON object, no
// unknown fields, none of the server-owned fields except those allowed.
func decode(c *fiber.Ctx, dst any, allow ...string) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return tenancy.Errorf(tenancy.CodeInvalid, "body: must be a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return decodeError(err)
	}
	for _, f := range serverOwned {
		if _, sent := fields[f]; sent && !contains(allow, f) {
			return tenancy.Errorf(tenancy.CodeInvalid, "%s: may not be set by the client", f)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tenancy.Errorf(tenancy.CodeInvalid, "body: must hold a single JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return tenancy.Errorf(tenancy.CodeInvalid, "body: malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return tenancy.Errorf(tenancy.CodeInvalid, "body: must be a JSON object")
		}
		return tenancy.Errorf(tenancy.CodeInvalid, "%s: must be %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return tenancy.Errorf(tenancy.CodeInvalid, "%s: unknown field", strings.Trim(name, `"`))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return tenancy.Errorf(tenancy.CodeInvalid, "body: malformed JSON (truncated)")
	}
	return tenancy.Errorf(tenancy.CodeInvalid, "body: malformed JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "float64":
		return "a number"
	case "slice":
		return "an array"
	}
	return "an object"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
