package router

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

type keyCreate struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

type keyCreated struct {
	catalog.APIKey
	// Key is the whole secret: shown in this answer and never again.
	Key string `json:"key"`
}

// handleKeyCreate makes an API key acting with the caller's role.
func (s *server) handleKeyCreate(c *fiber.Ctx) error {
	var req keyCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := text("name", req.Name, true, 100); err != nil {
		return err
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		return tenancy.Errorf(tenancy.CodeInvalid, "expiresAt: must be in the future")
	}
	nk, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	t, id := tenantOf(c)
	k, err := s.Catalog.CreateAPIKey(ctx, catalog.NewAPIKey{OrganizationID: t.Organization.ID, CreatedBy: id.UserID,
		Name: req.Name, Prefix: nk.Prefix, Role: id.Role, SecretHash: nk.Hash, ExpiresAt: req.ExpiresAt})
	if err != nil {
		return err
	}
	// Replicas may have cached the new prefix as unknown.
	if err := s.Changes.Publish(ctx, tenancy.ChangeKey, nk.Prefix, time.Time{}); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(keyCreated{APIKey: k, Key: nk.Plaintext})
}

func (s *server) handleKeyList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	keys, next, err := s.Catalog.APIKeys(c.UserContext(), t.Organization.ID, p)
	if err != nil {
		return err
	}
	return c.JSON(list(keys, next))
}

// handleKeyRevoke revokes a key; every replica refuses it at once.
func (s *server) handleKeyRevoke(c *fiber.Ctx) error {
	keyID, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	t, _ := tenantOf(c)
	prefix, err := s.Catalog.RevokeAPIKey(ctx, t.Organization.ID, keyID)
	if err != nil {
		return err
	}
	s.Keys.Forget(prefix)
	if err := s.Changes.Publish(ctx, tenancy.ChangeKey, prefix, time.Time{}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
