package router

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

func (s *server) handleTaskList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := service.TaskFilter{Status: strings.Clone(c.Query("status")), AgentID: strings.Clone(c.Query("agentId"))}
	data, next, err := s.Service.ListTasks(c.UserContext(), call(c), p, f)
	return listed(c, data, next, err)
}

func (s *server) handleTaskCreate(c *fiber.Ctx) error {
	var in service.TaskInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	task, err := s.Service.CreateTask(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, task, err)
}

func (s *server) handleTaskGet(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	cl := call(c)
	task, err := s.Service.GetTask(c.UserContext(), cl, id)
	return answer(c, cl, fiber.StatusOK, task, err)
}

func (s *server) handleTaskUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in service.TaskPatch
	if err := decode(c, &in, "status"); err != nil {
		return err
	}
	cl := call(c)
	task, err := s.Service.UpdateTask(c.UserContext(), cl, id, in)
	return answer(c, cl, fiber.StatusOK, task, err)
}

func (s *server) handleTaskDelete(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	return noContent(c, s.Service.DeleteTask(c.UserContext(), call(c), id))
}

func (s *server) handleTaskStart(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := noBody(c); err != nil {
		return err
	}
	cl := call(c)
	task, err := s.Service.StartTask(c.UserContext(), cl, id)
	return answer(c, cl, fiber.StatusOK, task, err)
}

func (s *server) handleTaskComplete(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in service.TaskCompletion
	if len(c.Body()) > 0 {
		// usage here is the run's own report, not the organization's.
		if err := decode(c, &in, "status", "usage"); err != nil {
			return err
		}
	}
	cl := call(c)
	task, err := s.Service.CompleteTask(c.UserContext(), cl, id, in)
	return answer(c, cl, fiber.StatusOK, task, err)
}

// noBody refuses a body on an action that takes none, except an empty object.
func noBody(c *fiber.Ctx) error {
	body := strings.TrimSpace(string(c.Body()))
	if body != "" && body != "{}" {
		return tenancy.Errorf(tenancy.CodeInvalid, "body: this action takes no fields")
	}
	return nil
}
