package service

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

var (
	taskStatuses = []string{"pending", "running", "completed", "failed", "cancelled"}
	priorities   = []string{"low", "normal", "high", "urgent"}
)

// TaskInput is the body of a task's creation.
type TaskInput struct {
	Title       string  `json:"title"`
	Description string  `json:"description"`
	AgentID     *string `json:"agentId"`
	Priority    string  `json:"priority"`
}

func (in *TaskInput) validate() error {
	if in.Priority == "" {
		in.Priority = "normal"
	}
	return firstError(tenancy.CheckName("title", in.Title, true, 500), tenancy.CheckText("description", in.Description, false, 10_000),
		oneOf("priority", &in.Priority, priorities...), uuidField("agentId", in.AgentID))
}

// TaskPatch is the body of a task's update: agentId absent keeps the
// agent, null unassigns, a UUID reassigns; status may only cancel.
type TaskPatch struct {
	Title       *string         `json:"title"`
	Description *string         `json:"description"`
	AgentID     json.RawMessage `json:"agentId"`
	Priority    *string         `json:"priority"`
	Status      *string         `json:"status"`
}

func (r TaskPatch) toPatch() (tenantdb.TaskPatch, error) {
	p := tenantdb.TaskPatch{Title: r.Title, Description: r.Description, Priority: r.Priority}
	if r.Title != nil {
		if err := tenancy.CheckName("title", *r.Title, true, 500); err != nil {
			return p, err
		}
	}
	err := firstError(optionalText("description", r.Description, 10_000), oneOf("priority", r.Priority, priorities...),
		oneOf("status", r.Status, "cancelled"))
	if err != nil {
		return p, err
	}
	p.Cancel = r.Status != nil
	switch {
	case len(r.AgentID) == 0:
	case string(r.AgentID) == "null":
		p.ClearAgent = true
	default:
		var id string
		if json.Unmarshal(r.AgentID, &id) != nil || uuid.Validate(id) != nil {
			return p, tenancy.Errorf(tenancy.CodeInvalid, "agentId: must be a UUID or null")
		}
		canonical := uuid.MustParse(id).String()
		p.AgentID = &canonical
	}
	return p, nil
}

// TaskFilter narrows a task list: status, agentId.
type TaskFilter = tenantdb.TaskFilter

// ListTasks returns one page of the tenant's tasks.
func (s *Service) ListTasks(ctx context.Context, c *Call, p tenancy.Page, f TaskFilter) ([]tenantdb.Task, string, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return nil, "", err
	}
	if f.Status != "" && !contains(taskStatuses, f.Status) {
		return nil, "", tenancy.Errorf(tenancy.CodeInvalid, "status: must be one of %s", strings.Join(taskStatuses, ", "))
	}
	var err error
	if f.AgentID, err = OptionalUUID("agentId", f.AgentID); err != nil {
		return nil, "", err
	}
	return s.Data.Tasks.List(ctx, c.Tenant, p, f)
}

// GetTask returns one task of the tenant.
func (s *Service) GetTask(ctx context.Context, c *Call, id string) (tenantdb.Task, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Task{}, err
	}
	return s.Data.Tasks.Get(ctx, c.Tenant, id)
}

// CreateTask adds a task.
func (s *Service) CreateTask(ctx context.Context, c *Call, in TaskInput) (tenantdb.Task, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Task{}, err
	}
	if err := in.validate(); err != nil {
		return tenantdb.Task{}, err
	}
	task, err := once(ctx, s, c, "CreateTask", in, func() (tenantdb.Task, error) {
		return s.Data.Tasks.Create(ctx, c.Tenant, c.Identity.UserID, tenantdb.NewTask{
			Title: in.Title, Description: in.Description, Priority: in.Priority, AgentID: in.AgentID})
	}, nil)
	if err == nil && !c.Replayed {
		s.emit(ctx, c, "task.created", task)
	}
	return task, err
}

// UpdateTask changes a task of the tenant.
func (s *Service) UpdateTask(ctx context.Context, c *Call, id string, in TaskPatch) (tenantdb.Task, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Task{}, err
	}
	patch, err := in.toPatch()
	if err != nil {
		return tenantdb.Task{}, err
	}
	task, err := s.Data.Tasks.Update(ctx, c.Tenant, c.Identity.UserID, id, patch)
	if err == nil {
		s.emit(ctx, c, "task.updated", task)
	}
	return task, err
}

// DeleteTask soft-deletes a task of the tenant.
func (s *Service) DeleteTask(ctx context.Context, c *Call, id string) error {
	if err := require(c, tenancy.RoleMember); err != nil {
		return err
	}
	if err := s.Data.Tasks.Delete(ctx, c.Tenant, c.Identity.UserID, id); err != nil {
		return err
	}
	s.emit(ctx, c, "task.updated", map[string]any{"id": id, "deleted": true})
	return nil
}

// StartTask runs a pending task, unless the period's agent-minutes are
// used up.
func (s *Service) StartTask(ctx context.Context, c *Call, id string) (tenantdb.Task, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Task{}, err
	}
	task, err := once(ctx, s, c, "StartTask", id, func() (tenantdb.Task, error) {
		usage, err := s.Catalog.Usage(ctx, c.Tenant.Organization.ID)
		if err != nil {
			return tenantdb.Task{}, err
		}
		limits := s.Limits(c.Tenant)
		if max := limits.MaxAgentMinutes; usage.AgentMinutes >= int64(max) {
			return tenantdb.Task{}, tenancy.Errorf(tenancy.CodePlanLimit,
				"the plan's %d agent-minutes for this billing period are used up; upgrade the plan to lift the limit", max)
		}
		if max := limits.MaxTokens; max > 0 && usage.Tokens >= max {
			return tenantdb.Task{}, tenancy.Errorf(tenancy.CodePlanLimit,
				"the plan's %d model tokens for this billing period are used up; upgrade the plan to lift the limit", max)
		}
		return s.Data.Tasks.Start(ctx, c.Tenant, c.Identity.UserID, id)
	}, nil)
	if err == nil && !c.Replayed {
		s.emit(ctx, c, "task.updated", task)
	}
	return task, err
}

// TaskCompletion is the body of a task's completion.
type TaskCompletion struct {
	Result json.RawMessage `json:"result"`
	Status *string         `json:"status"`
	Usage  *TokenUsage     `json:"usage"`
}

// TokenUsage is the model tokens a run used.
type TokenUsage struct {
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
}

// maxRunTokens bounds what one run may report: past it a number is a
// mistake or an attack on the counters, not a model's usage.
const maxRunTokens = 1 << 40

func (u *TokenUsage) total() (int64, error) {
	if u == nil {
		return 0, nil
	}
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.InputTokens > maxRunTokens || u.OutputTokens > maxRunTokens {
		return 0, tenancy.Errorf(tenancy.CodeInvalid, "usage: inputTokens and outputTokens must be between 0 and %d", int64(maxRunTokens))
	}
	return u.InputTokens + u.OutputTokens, nil
}

// CompleteTask finishes a running task and charges its agent-minutes and
// model tokens to the organization exactly once (the first completion's
// tokens count: the ledger is keyed by task).
//
// Two stores, one rule: the tenant write (the task finished, its minutes
// fixed) commits first; the catalog charge is keyed by the task, so it
// converges. If the charge fails the call fails and the retry — with the
// same Idempotency-Key or none — finds the task finished, returns it
// unchanged and charges again, which the catalog applies once.
func (s *Service) CompleteTask(ctx context.Context, c *Call, id string, in TaskCompletion) (tenantdb.Task, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Task{}, err
	}
	status := "completed"
	if in.Status != nil {
		if err := oneOf("status", in.Status, "completed", "failed"); err != nil {
			return tenantdb.Task{}, err
		}
		status = *in.Status
	}
	tokens, err := in.Usage.total()
	if err != nil {
		return tenantdb.Task{}, err
	}
	task, err := once(ctx, s, c, "CompleteTask", []any{id, in}, func() (tenantdb.Task, error) {
		task, err := s.Data.Tasks.Complete(ctx, c.Tenant, c.Identity.UserID, id, status, in.Result)
		if err != nil || task.AgentMinutes == nil {
			return task, err
		}
		return task, s.Catalog.Charge(ctx, c.Tenant.Organization.ID, task.ID, *task.AgentMinutes, tokens)
	}, nil)
	if err == nil && !c.Replayed {
		s.emit(ctx, c, "task.updated", task)
	}
	return task, err
}
