package service

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// TemplateInput is the task a schedule creates.
type TemplateInput struct {
	Title       string `json:"title"`
	Description string `json:"description"`
}

func (b *TemplateInput) validate() error {
	if b == nil {
		return tenancy.Errorf(tenancy.CodeInvalid, "taskTemplate: is required")
	}
	return firstError(tenancy.CheckName("taskTemplate.title", b.Title, true, 500),
		tenancy.CheckText("taskTemplate.description", b.Description, false, 10_000))
}

// ScheduleInput is the body of a schedule's creation.
type ScheduleInput struct {
	AgentID      string         `json:"agentId"`
	Cron         string         `json:"cron"`
	TaskTemplate *TemplateInput `json:"taskTemplate"`
	Enabled      *bool          `json:"enabled"`
}

// SchedulePatch is the body of a schedule's update.
type SchedulePatch struct {
	AgentID      *string        `json:"agentId"`
	Cron         *string        `json:"cron"`
	TaskTemplate *TemplateInput `json:"taskTemplate"`
	Enabled      *bool          `json:"enabled"`
}

// ListSchedules returns one page of the tenant's schedules.
func (s *Service) ListSchedules(ctx context.Context, c *Call, p tenancy.Page) ([]tenantdb.Schedule, string, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return nil, "", err
	}
	return s.Data.Schedules.List(ctx, c.Tenant, p)
}

// CreateSchedule adds a schedule within the plan's max_schedules.
//
// Two stores, one rule: the catalog's due index is derived from the
// tenant's schedules, and is noted before the schedule is written and
// again after. If the first note fails, nothing was written and the retry
// runs afresh. If the insert then fails, the index holds an early entry
// with no schedule behind it, which the scheduler's visit repairs: it fires
// nothing and recomputes the entry from the tenant's schedules. The note
// after the commit bumps the index's generation, so a visit that read the
// schedules before the commit cannot drop the entry; its failure is only
// logged, as the first note stands for it. So a retry under the same
// Idempotency-Key never finds a committed schedule behind an error, and
// leaves exactly one.
func (s *Service) CreateSchedule(ctx context.Context, c *Call, in ScheduleInput) (tenantdb.Schedule, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Schedule{}, err
	}
	enabled := in.Enabled == nil || *in.Enabled
	if err := firstError(uuidField("agentId", &in.AgentID), in.TaskTemplate.validate()); err != nil {
		return tenantdb.Schedule{}, err
	}
	next, err := nextRun(in.Cron, enabled)
	if err != nil {
		return tenantdb.Schedule{}, err
	}
	return once(ctx, s, c, "CreateSchedule", in, func() (tenantdb.Schedule, error) {
		if err := s.noteDue(ctx, c.Tenant, next); err != nil {
			return tenantdb.Schedule{}, err
		}
		out, err := s.Data.Schedules.Create(ctx, c.Tenant, c.Identity.UserID, tenantdb.Schedule{AgentID: in.AgentID, Cron: in.Cron,
			TaskTemplate: tenantdb.TaskTemplate(*in.TaskTemplate), Enabled: enabled, NextRunAt: next}, s.Limits(c.Tenant).MaxSchedules)
		if err == nil {
			s.noteDueAgain(ctx, c.Tenant, next)
		}
		return out, err
	}, nil)
}

// UpdateSchedule changes a schedule; the due index is written first, as in
// CreateSchedule.
func (s *Service) UpdateSchedule(ctx context.Context, c *Call, id string, in SchedulePatch) (tenantdb.Schedule, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Schedule{}, err
	}
	if err := uuidField("agentId", in.AgentID); err != nil {
		return tenantdb.Schedule{}, err
	}
	if in.TaskTemplate != nil {
		if err := in.TaskTemplate.validate(); err != nil {
			return tenantdb.Schedule{}, err
		}
	}
	cur, err := s.Data.Schedules.Get(ctx, c.Tenant, id)
	if err != nil {
		return tenantdb.Schedule{}, err
	}
	expr, enabled := cur.Cron, cur.Enabled
	if in.Cron != nil {
		expr = *in.Cron
	}
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	next, err := nextRun(expr, enabled)
	if err != nil {
		return tenantdb.Schedule{}, err
	}
	patch := tenantdb.SchedulePatch{AgentID: in.AgentID, Cron: in.Cron, Enabled: in.Enabled, NextRunAt: next}
	if in.TaskTemplate != nil {
		tmpl := tenantdb.TaskTemplate(*in.TaskTemplate)
		patch.TaskTemplate = &tmpl
	}
	if err := s.noteDue(ctx, c.Tenant, next); err != nil {
		return tenantdb.Schedule{}, err
	}
	out, err := s.Data.Schedules.Update(ctx, c.Tenant, c.Identity.UserID, id, patch)
	if err == nil {
		s.noteDueAgain(ctx, c.Tenant, next)
	}
	return out, err
}

// DeleteSchedule removes a schedule; its due index entry is left for the
// scheduler's next visit to recompute.
func (s *Service) DeleteSchedule(ctx context.Context, c *Call, id string) error {
	if err := require(c, tenancy.RoleMember); err != nil {
		return err
	}
	return s.Data.Schedules.Delete(ctx, c.Tenant, c.Identity.UserID, id)
}

// noteDueAgain notes the due time once the schedule committed (see
// CreateSchedule); a failure is logged, the note before the write stands.
func (s *Service) noteDueAgain(ctx context.Context, t tenancy.Tenant, at *time.Time) {
	if err := s.noteDue(context.WithoutCancel(ctx), t, at); err != nil {
		s.Log.Warn("noting a schedule's due time after its write failed; the note before it stands", "organization", t.Organization.ID, "err", err)
	}
}

// noteDue tells the scheduler's catalog index when the tenant next has a
// schedule due.
func (s *Service) noteDue(ctx context.Context, t tenancy.Tenant, at *time.Time) error {
	if at == nil {
		return nil
	}
	return s.Catalog.NoteScheduleDue(ctx, t.Organization.ID, *at)
}
