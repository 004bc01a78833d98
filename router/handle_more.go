package router

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

func (s *server) handleMessageList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	taskID, err := optionalUUID("taskId", strings.Clone(c.Query("taskId")))
	if err != nil {
		return err
	}
	agentID, err := optionalUUID("agentId", strings.Clone(c.Query("agentId")))
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	msgs, next, err := s.Data.Messages.List(c.UserContext(), t, p, taskID, agentID)
	if err != nil {
		return err
	}
	return c.JSON(list(msgs, next))
}

type messageCreate struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	AgentID *string `json:"agentId"`
	TaskID  *string `json:"taskId"`
}

func (s *server) handleMessageCreate(c *fiber.Ctx) error {
	var req messageCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	err := firstError(oneOf("role", &req.Role, "user", "agent", "system"), text("content", req.Content, true, 100_000),
		uuidField("agentId", req.AgentID), uuidField("taskId", req.TaskID))
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	m, err := s.Data.Messages.Create(c.UserContext(), t, id.UserID, tenantdb.NewMessage(req))
	if err != nil {
		return err
	}
	s.emit(c, "message.created", m)
	return c.Status(fiber.StatusCreated).JSON(m)
}

func (s *server) handleActivityList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	items, next, err := s.Data.Activity.List(c.UserContext(), t, p)
	if err != nil {
		return err
	}
	return c.JSON(list(items, next))
}

func (s *server) handleSessionList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	items, next, err := s.Data.Sessions.List(c.UserContext(), t, p)
	if err != nil {
		return err
	}
	return c.JSON(list(items, next))
}

type sessionCreate struct {
	AgentID string `json:"agentId"`
}

func (s *server) handleSessionCreate(c *fiber.Ctx) error {
	var req sessionCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := uuidField("agentId", &req.AgentID); err != nil {
		return err
	}
	t, id := tenantOf(c)
	out, err := s.Data.Sessions.Create(c.UserContext(), t, id.UserID, req.AgentID)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

type sessionPatch struct {
	Status     *string    `json:"status"`
	TokensUsed *int64     `json:"tokensUsed"`
	EndedAt    *time.Time `json:"endedAt"`
}

func (s *server) handleSessionUpdate(c *fiber.Ctx) error {
	sessionID, err := pathID(c)
	if err != nil {
		return err
	}
	var req sessionPatch
	if err := decode(c, &req, "status"); err != nil {
		return err
	}
	if err := oneOf("status", req.Status, "active", "completed", "failed"); err != nil {
		return err
	}
	if req.TokensUsed != nil && *req.TokensUsed < 0 {
		return tenancy.Errorf(tenancy.CodeInvalid, "tokensUsed: must not be negative")
	}
	t, id := tenantOf(c)
	out, err := s.Data.Sessions.Update(c.UserContext(), t, id.UserID, sessionID, tenantdb.SessionPatch(req))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *server) handleScheduleList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	items, next, err := s.Data.Schedules.List(c.UserContext(), t, p)
	if err != nil {
		return err
	}
	return c.JSON(list(items, next))
}

type templateBody struct {
	Title       string `json:"title"`
	Description string `json:"description"`
}

func (b *templateBody) validate() error {
	if b == nil {
		return tenancy.Errorf(tenancy.CodeInvalid, "taskTemplate: is required")
	}
	return firstError(text("taskTemplate.title", b.Title, true, 500), text("taskTemplate.description", b.Description, false, 10_000))
}

type scheduleCreate struct {
	AgentID      string        `json:"agentId"`
	Cron         string        `json:"cron"`
	TaskTemplate *templateBody `json:"taskTemplate"`
	Enabled      *bool         `json:"enabled"`
}

// nextRun parses expr and returns its next time after now (UTC), or nil
// when the schedule is disabled.
func nextRun(expr string, enabled bool) (*time.Time, error) {
	if err := text("cron", expr, true, 100); err != nil {
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

func (s *server) handleScheduleCreate(c *fiber.Ctx) error {
	var req scheduleCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	enabled := req.Enabled == nil || *req.Enabled
	if err := firstError(uuidField("agentId", &req.AgentID), req.TaskTemplate.validate()); err != nil {
		return err
	}
	next, err := nextRun(req.Cron, enabled)
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	out, err := s.Data.Schedules.Create(c.UserContext(), t, id.UserID, tenantdb.Schedule{AgentID: req.AgentID, Cron: req.Cron,
		TaskTemplate: tenantdb.TaskTemplate(*req.TaskTemplate), Enabled: enabled, NextRunAt: next})
	if err != nil {
		return err
	}
	if err := s.noteDue(c, t, out.NextRunAt); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

type schedulePatch struct {
	AgentID      *string       `json:"agentId"`
	Cron         *string       `json:"cron"`
	TaskTemplate *templateBody `json:"taskTemplate"`
	Enabled      *bool         `json:"enabled"`
}

func (s *server) handleScheduleUpdate(c *fiber.Ctx) error {
	scheduleID, err := pathID(c)
	if err != nil {
		return err
	}
	var req schedulePatch
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := uuidField("agentId", req.AgentID); err != nil {
		return err
	}
	if req.TaskTemplate != nil {
		if err := req.TaskTemplate.validate(); err != nil {
			return err
		}
	}
	ctx := c.UserContext()
	t, id := tenantOf(c)
	cur, err := s.Data.Schedules.Get(ctx, t, scheduleID)
	if err != nil {
		return err
	}
	expr, enabled := cur.Cron, cur.Enabled
	if req.Cron != nil {
		expr = *req.Cron
	}
	if req.Enabled != nil {
		enabled = *req.Enabled
	}
	next, err := nextRun(expr, enabled)
	if err != nil {
		return err
	}
	patch := tenantdb.SchedulePatch{AgentID: req.AgentID, Cron: req.Cron, Enabled: req.Enabled, NextRunAt: next}
	if req.TaskTemplate != nil {
		tmpl := tenantdb.TaskTemplate(*req.TaskTemplate)
		patch.TaskTemplate = &tmpl
	}
	out, err := s.Data.Schedules.Update(ctx, t, id.UserID, scheduleID, patch)
	if err != nil {
		return err
	}
	if err := s.noteDue(c, t, out.NextRunAt); err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *server) handleScheduleDelete(c *fiber.Ctx) error {
	scheduleID, err := pathID(c)
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	if err := s.Data.Schedules.Delete(c.UserContext(), t, id.UserID, scheduleID); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type organizationView struct {
	tenancy.Organization
	Limits tenancy.Limits `json:"limits"`
	Usage  struct {
		Agents       int       `json:"agents"`
		AgentMinutes int64     `json:"agentMinutes"`
		PeriodStart  time.Time `json:"periodStart"`
		PeriodEnd    time.Time `json:"periodEnd"`
	} `json:"usage"`
}

// handleOrganization returns the caller's organization with its limits and
// this period's usage.
func (s *server) handleOrganization(c *fiber.Ctx) error {
	ctx := c.UserContext()
	t, _ := tenantOf(c)
	usage, err := s.Catalog.Usage(ctx, t.Organization.ID)
	if err != nil {
		return err
	}
	agents, err := s.Data.Agents.Count(ctx, t)
	if err != nil {
		return err
	}
	v := organizationView{Organization: t.Organization, Limits: s.limits(t)}
	v.Usage.Agents, v.Usage.AgentMinutes = agents, usage.AgentMinutes
	v.Usage.PeriodStart, v.Usage.PeriodEnd = usage.PeriodStart, usage.PeriodEnd
	return c.JSON(v)
}

// limits are the tenant's effective limits: its plan's, with overrides.
func (s *server) limits(t tenancy.Tenant) tenancy.Limits {
	return t.Organization.Overrides.Apply(s.Plans[t.Organization.Plan])
}

// noteDue tells the scheduler's catalog index when the tenant next has a
// schedule due, so the scheduler visits it then.
func (s *server) noteDue(c *fiber.Ctx, t tenancy.Tenant, at *time.Time) error {
	if at == nil || s.ScheduleDue == nil {
		return nil
	}
	return s.ScheduleDue(c.UserContext(), t.Organization.ID, *at)
}
