package router

import (
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

var taskStatuses = []string{"pending", "running", "completed", "failed", "cancelled"}

func (s *server) handleTaskList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := tenantdb.TaskFilter{Status: strings.Clone(c.Query("status")), AgentID: strings.Clone(c.Query("agentId"))}
	if f.Status != "" && !contains(taskStatuses, f.Status) {
		return tenancy.Errorf(tenancy.CodeInvalid, "status: must be one of %s", strings.Join(taskStatuses, ", "))
	}
	if f.AgentID, err = optionalUUID("agentId", f.AgentID); err != nil {
		return err
	}
	t, _ := tenantOf(c)
	tasks, next, err := s.Data.Tasks.List(c.UserContext(), t, p, f)
	if err != nil {
		return err
	}
	return c.JSON(list(tasks, next))
}

type taskCreate struct {
	Title       string  `json:"title"`
	Description string  `json:"description"`
	AgentID     *string `json:"agentId"`
	Priority    string  `json:"priority"`
}

var priorities = []string{"low", "normal", "high", "urgent"}

func (s *server) handleTaskCreate(c *fiber.Ctx) error {
	var req taskCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Priority == "" {
		req.Priority = "normal"
	}
	err := firstError(text("title", req.Title, true, 500), text("description", req.Description, false, 10_000),
		oneOf("priority", &req.Priority, priorities...), uuidField("agentId", req.AgentID))
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	task, err := s.Data.Tasks.Create(c.UserContext(), t, id.UserID, tenantdb.NewTask{
		Title: req.Title, Description: req.Description, Priority: req.Priority, AgentID: req.AgentID})
	if err != nil {
		return err
	}
	s.emit(c, "task.created", task)
	return c.Status(fiber.StatusCreated).JSON(task)
}

func (s *server) handleTaskGet(c *fiber.Ctx) error {
	taskID, err := pathID(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	task, err := s.Data.Tasks.Get(c.UserContext(), t, taskID)
	if err != nil {
		return err
	}
	return c.JSON(task)
}

type taskPatch struct {
	Title       *string         `json:"title"`
	Description *string         `json:"description"`
	AgentID     json.RawMessage `json:"agentId"`
	Priority    *string         `json:"priority"`
	Status      *string         `json:"status"`
}

func (r taskPatch) toPatch() (tenantdb.TaskPatch, error) {
	p := tenantdb.TaskPatch{Title: r.Title, Description: r.Description, Priority: r.Priority}
	if r.Title != nil {
		if err := text("title", *r.Title, true, 500); err != nil {
			return p, err
		}
	}
	err := firstError(optionalText("description", r.Description, 10_000), oneOf("priority", r.Priority, priorities...),
		oneOf("status", r.Status, "cancelled"))
	if err != nil {
		return p, err
	}
	p.Cancel = r.Status != nil
	// agentId: absent keeps it, null unassigns, a UUID reassigns.
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

func (s *server) handleTaskUpdate(c *fiber.Ctx) error {
	taskID, err := pathID(c)
	if err != nil {
		return err
	}
	var req taskPatch
	if err := decode(c, &req, "status"); err != nil {
		return err
	}
	patch, err := req.toPatch()
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	task, err := s.Data.Tasks.Update(c.UserContext(), t, id.UserID, taskID, patch)
	if err != nil {
		return err
	}
	s.emit(c, "task.updated", task)
	return c.JSON(task)
}

func (s *server) handleTaskDelete(c *fiber.Ctx) error {
	taskID, err := pathID(c)
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	if err := s.Data.Tasks.Delete(c.UserContext(), t, id.UserID, taskID); err != nil {
		return err
	}
	s.emit(c, "task.updated", fiber.Map{"id": taskID, "deleted": true})
	return c.SendStatus(fiber.StatusNoContent)
}

// handleTaskStart runs a pending task, unless the period's agent-minutes
// are used up.
func (s *server) handleTaskStart(c *fiber.Ctx) error {
	taskID, err := pathID(c)
	if err != nil {
		return err
	}
	if err := s.noBody(c); err != nil {
		return err
	}
	ctx := c.UserContext()
	t, id := tenantOf(c)
	usage, err := s.Catalog.Usage(ctx, t.Organization.ID)
	if err != nil {
		return err
	}
	if max := s.limits(t).MaxAgentMinutes; usage.AgentMinutes >= int64(max) {
		return tenancy.Errorf(tenancy.CodePlanLimit,
			"the plan's %d agent-minutes for this billing period are used up; upgrade the plan to lift the limit", max)
	}
	task, err := s.Data.Tasks.Start(ctx, t, id.UserID, taskID)
	if err != nil {
		return err
	}
	s.emit(c, "task.updated", task)
	return c.JSON(task)
}

type taskComplete struct {
	Result json.RawMessage `json:"result"`
	Status *string         `json:"status"`
}

// handleTaskComplete finishes a running task and charges its agent-minutes
// to the organization exactly once: a retried completion finds the task
// finished and its charge already recorded.
func (s *server) handleTaskComplete(c *fiber.Ctx) error {
	taskID, err := pathID(c)
	if err != nil {
		return err
	}
	var req taskComplete
	if len(c.Body()) > 0 {
		if err := decode(c, &req, "status"); err != nil {
			return err
		}
	}
	status := "completed"
	if req.Status != nil {
		if err := oneOf("status", req.Status, "completed", "failed"); err != nil {
			return err
		}
		status = *req.Status
	}
	ctx := c.UserContext()
	t, id := tenantOf(c)
	task, err := s.Data.Tasks.Complete(ctx, t, id.UserID, taskID, status, req.Result)
	if err != nil {
		return err
	}
	if task.AgentMinutes != nil {
		if err := s.Catalog.Charge(ctx, t.Organization.ID, task.ID, *task.AgentMinutes); err != nil {
			return err
		}
	}
	s.emit(c, "task.updated", task)
	return c.JSON(task)
}

// noBody refuses a body on an action that takes none, except an empty object.
func (s *server) noBody(c *fiber.Ctx) error {
	body := strings.TrimSpace(string(c.Body()))
	if body != "" && body != "{}" {
		return tenancy.Errorf(tenancy.CodeInvalid, "body: this action takes no fields")
	}
	return nil
}

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

// optionalUUID checks a UUID query parameter; "" means absent.
func optionalUUID(field, v string) (string, error) {
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
