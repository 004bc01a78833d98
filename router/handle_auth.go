package router

import (
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
	if req.Email == "" || req.Password == "" {
		return tenancy.Errorf(tenancy.CodeInvalid, "email and password: are required")
	}
	ctx := c.UserContext()
	cred, err := s.Catalog.UserByEmail(ctx, req.Email)
	if err != nil && tenancy.ErrorCode(err) != tenancy.CodeNotFound {
		return err
	}
	hash := cred.PasswordHash
	if err != nil {
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
