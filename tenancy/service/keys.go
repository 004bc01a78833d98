package service

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

// KeyInput is the body of an API key's creation.
type KeyInput struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// KeyCreated is a new API key. Key, the whole secret, is in the first
// answer only: a replay of the creation has the key's metadata without it.
type KeyCreated struct {
	catalog.APIKey
	Key string `json:"key,omitempty"`
}

// CreateAPIKey makes an API key acting with the caller's role; admins and
// owners only.
func (s *Service) CreateAPIKey(ctx context.Context, c *Call, in KeyInput) (KeyCreated, error) {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return KeyCreated{}, err
	}
	if err := tenancy.CheckName("name", in.Name, true, 100); err != nil {
		return KeyCreated{}, err
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		return KeyCreated{}, tenancy.Errorf(tenancy.CodeInvalid, "expiresAt: must be in the future")
	}
	return once(ctx, s, c, "CreateAPIKey", in, func() (KeyCreated, error) {
		nk, err := identity.GenerateKey()
		if err != nil {
			return KeyCreated{}, err
		}
		k, err := s.Catalog.CreateAPIKey(ctx, catalog.NewAPIKey{OrganizationID: c.Tenant.Organization.ID, CreatedBy: c.Identity.UserID,
			Name: in.Name, Prefix: nk.Prefix, Role: c.Identity.Role, SecretHash: nk.Hash, ExpiresAt: in.ExpiresAt})
		if err != nil {
			return KeyCreated{}, err
		}
		// Replicas may have cached the new prefix as unknown; if telling
		// them fails, their negative entry expires within seconds.
		if err := s.Changes.Publish(ctx, tenancy.ChangeKey, nk.Prefix, time.Time{}); err != nil {
			s.Log.Warn("publishing a new API key failed", "err", err)
		}
		return KeyCreated{APIKey: k, Key: nk.Plaintext}, nil
	}, func(k KeyCreated) KeyCreated { k.Key = ""; return k })
}

// ListAPIKeys lists the organization's live keys, without secrets.
func (s *Service) ListAPIKeys(ctx context.Context, c *Call, p tenancy.Page) ([]catalog.APIKey, string, error) {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return nil, "", err
	}
	return s.Catalog.APIKeys(ctx, c.Tenant.Organization.ID, p)
}

// RevokeAPIKey revokes a key of the organization; every replica refuses it
// at once.
func (s *Service) RevokeAPIKey(ctx context.Context, c *Call, id string) error {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return err
	}
	prefix, err := s.Catalog.RevokeAPIKey(ctx, c.Tenant.Organization.ID, id)
	if err != nil {
		return err
	}
	if s.Keys != nil {
		s.Keys.Forget(prefix)
	}
	return s.Changes.Publish(ctx, tenancy.ChangeKey, prefix, time.Time{})
}
