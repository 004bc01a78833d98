package service

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
)

// UserInput is the body of a user's creation.
type UserInput struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// UserPatch is the body of a user's update.
type UserPatch struct {
	Role string `json:"role"`
}

// ListUsers lists the organization's members; admins and owners only.
func (s *Service) ListUsers(ctx context.Context, c *Call, p tenancy.Page) ([]tenancy.User, string, error) {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return nil, "", err
	}
	return s.Catalog.Users(ctx, c.Tenant.Organization.ID, p)
}

// CreateUser adds a user; only an owner may make another owner.
func (s *Service) CreateUser(ctx context.Context, c *Call, in UserInput) (tenancy.User, error) {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return tenancy.User{}, err
	}
	if err := firstError(CheckEmail(in.Email), CheckPassword(in.Password)); err != nil {
		return tenancy.User{}, err
	}
	role, err := tenancy.ParseRole(in.Role)
	if err != nil {
		return tenancy.User{}, err
	}
	if err := mayGrant(c.Identity, role); err != nil {
		return tenancy.User{}, err
	}
	return once(ctx, s, c, "CreateUser", in, func() (tenancy.User, error) {
		hash, err := s.hashPassword(ctx, in.Password)
		if err != nil {
			return tenancy.User{}, err
		}
		return s.Catalog.CreateUser(ctx, c.Tenant.Organization.ID, in.Email, hash, role)
	}, nil)
}

// UpdateUserRole changes a user's role. Owners are managed by owners; the
// last owner stays one. The user's sessions get the new role at once, and
// its API keys are lowered with it for good.
func (s *Service) UpdateUserRole(ctx context.Context, c *Call, userID string, in UserPatch) (tenancy.User, error) {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return tenancy.User{}, err
	}
	role, err := tenancy.ParseRole(in.Role)
	if err != nil {
		return tenancy.User{}, err
	}
	target, err := s.userOfTenant(ctx, c, userID)
	if err != nil {
		return tenancy.User{}, err
	}
	if err := firstError(mayGrant(c.Identity, role), mayGrant(c.Identity, target.Role)); err != nil {
		return tenancy.User{}, err
	}
	u, err := s.Catalog.SetUserRole(ctx, target.OrganizationID, userID, role)
	if err != nil {
		return u, err
	}
	return u, s.userChanged(ctx, userID)
}

// DeleteUser removes a user; its sessions stop working at once. Its API
// keys stay with the organization, at the lowest role they ever had.
func (s *Service) DeleteUser(ctx context.Context, c *Call, userID string) error {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return err
	}
	target, err := s.userOfTenant(ctx, c, userID)
	if err != nil {
		return err
	}
	if err := mayGrant(c.Identity, target.Role); err != nil {
		return err
	}
	if err := s.Catalog.DeleteUser(ctx, target.OrganizationID, userID); err != nil {
		return err
	}
	return s.userChanged(ctx, userID)
}

// userOfTenant returns a user of the caller's organization; anyone else's
// user is not found.
func (s *Service) userOfTenant(ctx context.Context, c *Call, userID string) (tenancy.User, error) {
	u, err := s.Catalog.User(ctx, userID)
	if err != nil || u.OrganizationID != c.Tenant.Organization.ID {
		if err == nil || tenancy.ErrorCode(err) == tenancy.CodeNotFound {
			return u, tenancy.ErrNotFound
		}
		return u, err
	}
	return u, nil
}

// userChanged makes every replica forget the user's cached state and the
// records of its keys.
func (s *Service) userChanged(ctx context.Context, userID string) error {
	if s.Principals != nil {
		s.Principals.Forget(userID)
	}
	if s.Keys != nil {
		s.Keys.ForgetCreatedBy(userID)
	}
	return s.Changes.Publish(ctx, tenancy.ChangeUser, userID, time.Time{})
}

// mayGrant refuses an admin who would create, promote, demote or remove an
// owner: only owners manage owners.
func mayGrant(caller tenancy.Identity, role tenancy.Role) error {
	if role == tenancy.RoleOwner && caller.Role != tenancy.RoleOwner {
		return tenancy.Errorf(tenancy.CodeForbidden, "only an owner can manage owners")
	}
	return nil
}
