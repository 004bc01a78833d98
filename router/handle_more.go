package router

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

func (s *server) handleMessageList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListMessages(c.UserContext(), call(c), p,
		strings.Clone(c.Query("taskId")), strings.Clone(c.Query("agentId")))
	return listed(c, data, next, err)
}

func (s *server) handleMessageCreate(c *fiber.Ctx) error {
	var in service.MessageInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	m, err := s.Service.CreateMessage(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, m, err)
}

func (s *server) handleActivityList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListActivity(c.UserContext(), call(c), p)
	return listed(c, data, next, err)
}

func (s *server) handleSessionList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListSessions(c.UserContext(), call(c), p)
	return listed(c, data, next, err)
}

func (s *server) handleSessionCreate(c *fiber.Ctx) error {
	var in service.SessionInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	out, err := s.Service.CreateSession(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, out, err)
}

func (s *server) handleSessionUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in service.SessionPatch
	if err := decode(c, &in, "status"); err != nil {
		return err
	}
	cl := call(c)
	out, err := s.Service.UpdateSession(c.UserContext(), cl, id, in)
	return answer(c, cl, fiber.StatusOK, out, err)
}

func (s *server) handleScheduleList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListSchedules(c.UserContext(), call(c), p)
	return listed(c, data, next, err)
}

func (s *server) handleScheduleCreate(c *fiber.Ctx) error {
	var in service.ScheduleInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	out, err := s.Service.CreateSchedule(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, out, err)
}

func (s *server) handleScheduleUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in service.SchedulePatch
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	out, err := s.Service.UpdateSchedule(c.UserContext(), cl, id, in)
	return answer(c, cl, fiber.StatusOK, out, err)
}

func (s *server) handleScheduleDelete(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	return noContent(c, s.Service.DeleteSchedule(c.UserContext(), call(c), id))
}

func (s *server) handleOrganization(c *fiber.Ctx) error {
	cl := call(c)
	v, err := s.Service.Organization(c.UserContext(), cl)
	return answer(c, cl, fiber.StatusOK, v, err)
}

func (s *server) handleBilling(c *fiber.Ctx) error {
	cl := call(c)
	v, err := s.Service.BillingState(c.UserContext(), cl)
	return answer(c, cl, fiber.StatusOK, v, err)
}

func (s *server) handleUsage(c *fiber.Ctx) error {
	q := service.UsageQuery{Granularity: strings.Clone(c.Query("granularity"))}
	for field, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if raw := c.Query(field); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				return tenancy.Errorf(tenancy.CodeInvalid, "%s: must be an RFC 3339 time such as 2026-12-01T00:00:00Z", field)
			}
			*dst = t
		}
	}
	cl := call(c)
	r, err := s.Service.OrganizationUsage(c.UserContext(), cl, q)
	return answer(c, cl, fiber.StatusOK, r, err)
}
