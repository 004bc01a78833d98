package router

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token        string               `json:"token"`
	ExpiresAt    time.Time            `json:"expiresAt"`
	User         tenancy.User         `json:"user"`
	Organization tenancy.Organization `json:"organization"`
}

var errBadLogin = tenancy.Errorf(tenancy.CodeUnauthorized, "wrong email or password")

// handleLogin exchanges email and password for a session token. An unknown
// email and a wrong password get the same answer after the same work.
func (s *server) handleLogin(c *fiber.Ctx) error {
	var req loginRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := text("email", req.Email, true, 320); err != nil {
		return err
	}
	if err := text("password", req.Password, true, 1024); err != nil {
		return err
	}
	ctx := c.UserContext()
	release, err := s.hashSlot(ctx)
	if err != nil {
		return err
	}
	defer release()
	cred, err := s.Catalog.UserByEmail(ctx, req.Email)
	if err != nil && tenancy.ErrorCode(err) != tenancy.CodeNotFound {
		return err
	}
	hash := cred.PasswordHash
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		hash = s.dummyHash
	}
	if perr := identity.CheckPassword(hash, req.Password); err != nil || perr != nil {
		if perr != nil && !errors.Is(perr, identity.ErrPasswordMismatch) {
			s.Log.Error("password check", "err", perr)
		}
		return errBadLogin
	}
	org, err := s.Catalog.Organization(ctx, cred.User.OrganizationID)
	if err != nil {
		return err
	}
	token, exp, err := s.Tokens.Issue(cred.User)
	if err != nil {
		return err
	}
	return c.JSON(loginResponse{Token: token, ExpiresAt: exp, User: cred.User, Organization: org})
}

type meResponse struct {
	User         tenancy.User         `json:"user"`
	Organization tenancy.Organization `json:"organization"`
}

// handleMe returns the caller and its organization.
func (s *server) handleMe(c *fiber.Ctx) error {
	ctx := c.UserContext()
	id, _ := tenancy.IdentityFrom(ctx)
	u, err := s.Catalog.User(ctx, id.UserID)
	if err != nil {
		if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
			return errUnauthorized
		}
		return err
	}
	org, err := s.Catalog.Organization(ctx, u.OrganizationID)
	if err != nil {
		return err
	}
	return c.JSON(meResponse{User: u, Organization: org})
}

// hashSlot bounds how many password hashes run at once: each argon2id
// check takes 19 MiB and a core for tens of milliseconds, so an unbounded
// burst of logins could exhaust the gateway's memory. A request that cannot
// get a slot within a second is told to retry.
func (s *server) hashSlot(ctx context.Context) (release func(), err error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, &tenancy.Error{Code: tenancy.CodeRateLimited, Message: "too many logins at once; retry shortly", RetryAfter: time.Second}
}
