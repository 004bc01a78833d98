package service

import (
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

func optionalName(field string, value *string, max int) error {
	if value == nil {
		return nil
	}
	return tenancy.CheckName(field, *value, false, max)
}

func optionalText(field string, value *string, max int) error {
	if value == nil {
		return nil
	}
	return tenancy.CheckText(field, *value, false, max)
}

func oneOf(field string, value *string, allowed ...string) error {
	if value == nil || contains(allowed, *value) {
		return nil
	}
	return tenancy.Errorf(tenancy.CodeInvalid, "%s: must be one of %s", field, strings.Join(allowed, ", "))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// uuidField checks an optional UUID field and puts it in canonical form.
func uuidField(field string, v *string) error {
	if v == nil {
		return nil
	}
	u, err := uuid.Parse(*v)
	if err != nil || u.String() != strings.ToLower(*v) {
		return tenancy.Errorf(tenancy.CodeInvalid, "%s: must be a UUID", field)
	}
	*v = u.String()
	return nil
}

// OptionalUUID checks a UUID query parameter; "" means absent.
func OptionalUUID(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	err := uuidField(field, &v)
	return v, err
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// nextRun parses expr and returns its next time after now (UTC), or nil
// when the schedule is disabled.
func nextRun(expr string, enabled bool) (*time.Time, error) {
	if err := tenancy.CheckName("cron", expr, true, 100); err != nil {
		return nil, err
	}
	next, err := tenantdb.NextRun(expr, time.Now())
	if err != nil {
		return nil, tenancy.Errorf(tenancy.CodeInvalid, "cron: %s", err.Error())
	}
	if !enabled {
		return nil, nil
	}
	if next.IsZero() {
		return nil, tenancy.Errorf(tenancy.CodeInvalid, "cron: never fires")
	}
	return &next, nil
}
