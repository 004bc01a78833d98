package router

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

func (s *server) handleUserList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	users, next, err := s.Catalog.Users(c.UserContext(), t.Organization.ID, p)
	if err != nil {
		return err
	}
	return c.JSON(list(users, next))
}

type userCreate struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// handleUserCreate adds a user; only an owner may make another owner.
func (s *server) handleUserCreate(c *fiber.Ctx) error {
	var req userCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := checkEmail(req.Email); err != nil {
		return err
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	role, err := tenancy.ParseRole(req.Role)
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	if err := mayGrant(id, role); err != nil {
		return err
	}
	ctx := c.UserContext()
	release, err := s.hashSlot(ctx)
	if err != nil {
		return err
	}
	hash, err := identity.HashPassword(req.Password, s.PasswordParams)
	release()
	if err != nil {
		return err
	}
	u, err := s.Catalog.CreateUser(ctx, t.Organization.ID, req.Email, hash, role)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

type userPatch struct {
	Role string `json:"role"`
}

// handleUserUpdate changes a user's role. Owners are managed by owners;
// the last owner stays one. Existing sessions of the user get the new role
// at once.
func (s *server) handleUserUpdate(c *fiber.Ctx) error {
	userID, err := pathID(c)
	if err != nil {
		return err
	}
	var req userPatch
	if err := decode(c, &req); err != nil {
		return err
	}
	role, err := tenancy.ParseRole(req.Role)
	if err != nil {
		return err
	}
	target, err := s.userOfTenant(c, userID)
	if err != nil {
		return err
	}
	_, id := tenantOf(c)
	if err := mayGrant(id, role); err != nil {
		return err
	}
	if err := mayGrant(id, target.Role); err != nil {
		return err
	}
	u, err := s.Catalog.SetUserRole(c.UserContext(), target.OrganizationID, userID, role)
	if err != nil {
		return err
	}
	if err := s.userChanged(c, userID); err != nil {
		return err
	}
	return c.JSON(u)
}

// handleUserDelete removes a user; its sessions stop working at once.
func (s *server) handleUserDelete(c *fiber.Ctx) error {
	userID, err := pathID(c)
	if err != nil {
		return err
	}
	target, err := s.userOfTenant(c, userID)
	if err != nil {
		return err
	}
	_, id := tenantOf(c)
	if err := mayGrant(id, target.Role); err != nil {
		return err
	}
	if err := s.Catalog.DeleteUser(c.UserContext(), target.OrganizationID, userID); err != nil {
		return err
	}
	if err := s.userChanged(c, userID); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// userOfTenant returns a user of the caller's organization; anyone else's
// user is not found.
func (s *server) userOfTenant(c *fiber.Ctx, userID string) (tenancy.User, error) {
	t, _ := tenantOf(c)
	u, err := s.Catalog.User(c.UserContext(), userID)
	if err != nil || u.OrganizationID != t.Organization.ID {
		if err == nil || tenancy.ErrorCode(err) == tenancy.CodeNotFound {
			return u, tenancy.ErrNotFound
		}
		return u, err
	}
	return u, nil
}

func (s *server) userChanged(c *fiber.Ctx, userID string) error {
	s.Principals.Forget(userID)
	return s.Changes.Publish(c.UserContext(), tenancy.ChangeUser, userID, time.Time{})
}

// mayGrant refuses an admin who would create, promote, demote or remove an
// owner: only owners manage owners.
func mayGrant(caller tenancy.Identity, role tenancy.Role) error {
	if role == tenancy.RoleOwner && caller.Role != tenancy.RoleOwner {
		return tenancy.Errorf(tenancy.CodeForbidden, "only an owner can manage owners")
	}
	return nil
}
