package router

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

type signupRequest struct {
	Email            string `json:"email"`
	Password         string `json:"password"`
	OrganizationName string `json:"organizationName"`
	OrganizationSlug string `json:"organizationSlug"`
}

func (r signupRequest) validate() error {
	if err := checkEmail(r.Email); err != nil {
		return err
	}
	if err := checkPassword(r.Password); err != nil {
		return err
	}
	if err := text("organizationName", r.OrganizationName, true, 200); err != nil {
		return err
	}
	if r.OrganizationSlug != "" {
		if err := tenancy.ValidateSlug(r.OrganizationSlug); err != nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "organizationSlug: must be 1-40 lowercase letters, digits or inner hyphens")
		}
	}
	return nil
}

// Signups per client address per hour: enough for an office, too few to
// fill the catalog.
const signupsPerHour = 20

// handleSignup creates an organization and its owner: active on the free
// plan with a session in open mode, pending (waitlisted) otherwise.
func (s *server) handleSignup(c *fiber.Ctx) error {
	var req signupRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := c.UserContext()
	if n, reset, err := s.Throttle.Hit(ctx, "signup:ip:"+c.IP(), time.Hour); err == nil && n > signupsPerHour {
		return rateLimited("too many signups from this address", reset)
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		return err
	}
	hash, err := identity.HashPassword(req.Password, s.PasswordParams)
	release()
	if err != nil {
		return err
	}
	status := tenancy.StatusPending
	if s.SignupMode == "open" {
		status = tenancy.StatusActive
	}
	org, err := s.createWithSlug(ctx, req, hash, status)
	if err != nil {
		return err
	}
	cred, err := s.Catalog.UserByEmail(ctx, req.Email)
	if err != nil {
		return err
	}
	if status == tenancy.StatusPending {
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"user": cred.User, "organization": org})
	}
	token, _, err := s.Tokens.Issue(cred.User)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"user": cred.User, "organization": org, "token": token})
}

// createWithSlug creates the organization under the requested slug, or
// under one derived from its name, trying numbered variants when taken.
func (s *server) createWithSlug(ctx context.Context, req signupRequest, hash string, status tenancy.Status) (tenancy.Organization, error) {
	if _, err := s.Catalog.UserByEmail(ctx, req.Email); err == nil {
		return tenancy.Organization{}, errEmailTaken
	}
	if req.OrganizationSlug != "" {
		org, err := s.CreateOrganization(ctx, req.OrganizationSlug, req.OrganizationName, req.Email, hash, status)
		return org, emailConflict(ctx, s, req.Email, err)
	}
	base := deriveSlug(req.OrganizationName)
	for i := 1; ; i++ {
		slug := base
		if i > 1 {
			slug = fmt.Sprintf("%s-%d", strings.TrimRight(base[:min(len(base), 34)], "-"), i)
		}
		if i > 20 {
			slug = fmt.Sprintf("%s-%s", strings.TrimRight(base[:min(len(base), 30)], "-"), randomSuffix())
		}
		org, err := s.CreateOrganization(ctx, slug, req.OrganizationName, req.Email, hash, status)
		if tenancy.ErrorCode(err) != tenancy.CodeConflict || i > 25 {
			return org, emailConflict(ctx, s, req.Email, err)
		}
		if _, err := s.Catalog.UserByEmail(ctx, req.Email); err == nil {
			return tenancy.Organization{}, errEmailTaken
		}
	}
}

var errEmailTaken = tenancy.Errorf(tenancy.CodeConflict, "email: is already registered")

// emailConflict names the email as the conflict when a racing signup took
// it between the check and the insert.
func emailConflict(ctx context.Context, s *server, email string, err error) error {
	if tenancy.ErrorCode(err) == tenancy.CodeConflict {
		if _, lookup := s.Catalog.UserByEmail(ctx, email); lookup == nil {
			return errEmailTaken
		}
	}
	return err
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// deriveSlug makes a slug of an organization's name: "Acme Corp!" → "acme-corp".
func deriveSlug(name string) string {
	slug := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(slug) > 40 {
		slug = strings.TrimRight(slug[:40], "-")
	}
	if slug == "" {
		slug = "org-" + randomSuffix()
	}
	return slug
}

func randomSuffix() string { return strings.ToLower(newRequestID()[:8]) }

func checkEmail(email string) error {
	if err := text("email", email, true, 254); err != nil {
		return err
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndex(email, "@")+1:], ".") {
		return tenancy.Errorf(tenancy.CodeInvalid, "email: must be an address like name@example.com")
	}
	return nil
}

func checkPassword(password string) error {
	if len([]rune(password)) < identity.MinPasswordLength {
		return tenancy.Errorf(tenancy.CodeInvalid, "password: must be at least %d characters", identity.MinPasswordLength)
	}
	return text("password", password, true, 1024)
}

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
// Failures are counted per account and address, and per address: past the
// limit the answer is 429 until the window ends, whatever the password.
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
	keys := loginKeys(req.Email, c.IP())
	if err := s.loginThrottled(ctx, keys); err != nil {
		return err
	}
	user, err := s.checkLogin(ctx, req)
	if errors.Is(err, errBadLogin) {
		s.loginFailed(ctx, keys)
	}
	if err != nil {
		return err
	}
	_ = s.Throttle.Reset(ctx, keys.account)
	org, err := s.Catalog.Organization(ctx, user.OrganizationID)
	if err != nil {
		return err
	}
	token, exp, err := s.Tokens.Issue(user)
	if err != nil {
		return err
	}
	return c.JSON(loginResponse{Token: token, ExpiresAt: exp, User: user, Organization: org})
}

func (s *server) checkLogin(ctx context.Context, req loginRequest) (tenancy.User, error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return tenancy.User{}, err
	}
	defer release()
	cred, err := s.Catalog.UserByEmail(ctx, req.Email)
	if err != nil && tenancy.ErrorCode(err) != tenancy.CodeNotFound {
		return tenancy.User{}, err
	}
	hash := cred.PasswordHash
	if err != nil {
		hash = s.dummyHash
	}
	if perr := identity.CheckPassword(hash, req.Password); err != nil || perr != nil {
		if perr != nil && !errors.Is(perr, identity.ErrPasswordMismatch) {
			s.Log.Error("password check", "err", perr)
		}
		return tenancy.User{}, errBadLogin
	}
	return cred.User, nil
}

type throttleKeys struct{ account, address, spread string }

// loginKeys: failures per (account, address) lock out one guesser; per
// address, one machine guessing many accounts; per account across all
// addresses (at a higher bar), a botnet on one account. The victim's own
// address is only refused by the last, and only until the window ends.
func loginKeys(email, ip string) throttleKeys {
	e := catalog.NormalizeEmail(email)
	return throttleKeys{account: "login:acct:" + e + "|" + ip, address: "login:ip:" + ip, spread: "login:email:" + e}
}

func (s *server) loginThrottled(ctx context.Context, k throttleKeys) error {
	limits := map[string]int{k.account: s.Login.MaxFailures, k.address: s.Login.MaxFailuresPerIP,
		k.spread: 10 * s.Login.MaxFailures}
	for key, limit := range limits {
		n, reset, err := s.Throttle.Peek(ctx, key)
		if err == nil && n >= int64(limit) {
			return rateLimited("too many failed logins; try again later", reset)
		}
	}
	return nil
}

func (s *server) loginFailed(ctx context.Context, k throttleKeys) {
	for _, key := range []string{k.account, k.address, k.spread} {
		_, _, _ = s.Throttle.Hit(ctx, key, s.Login.Window)
	}
}

func rateLimited(message string, retry time.Duration) error {
	return &tenancy.Error{Code: tenancy.CodeRateLimited, Message: message, RetryAfter: max(retry, time.Second)}
}

// handleLogout revokes the session's token on every replica, durably.
func (s *server) handleLogout(c *fiber.Ctx) error {
	if err := s.noBody(c); err != nil {
		return err
	}
	id, _ := tenancy.IdentityFrom(c.UserContext())
	if id.TokenID == "" {
		return tenancy.Errorf(tenancy.CodeInvalid, "logout ends a session; revoke an API key with DELETE /api/api-keys/{id}")
	}
	ctx := c.UserContext()
	if err := s.Catalog.RevokeToken(ctx, id.TokenID, id.UserID, id.OrganizationID, id.ExpiresAt); err != nil {
		return err
	}
	s.Revocations.Add(id.TokenID, id.ExpiresAt)
	if err := s.Changes.Publish(ctx, tenancy.ChangeToken, id.TokenID, id.ExpiresAt); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type meResponse struct {
	User         *tenancy.User        `json:"user"`
	Organization tenancy.Organization `json:"organization"`
}

// handleMe returns the caller and its organization; for an API key the
// user is the key's creator, or null if that user is gone.
func (s *server) handleMe(c *fiber.Ctx) error {
	ctx := c.UserContext()
	id, _ := tenancy.IdentityFrom(ctx)
	var resp meResponse
	if id.UserID != "" {
		u, err := s.Principals.User(ctx, id.UserID)
		if err == nil {
			resp.User = &u
		} else if tenancy.ErrorCode(err) != tenancy.CodeNotFound {
			return err
		}
	}
	org, err := s.Catalog.Organization(ctx, id.OrganizationID)
	if err != nil {
		return err
	}
	resp.Organization = org
	return c.JSON(resp)
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
	return nil, rateLimited("too many logins at once; retry shortly", time.Second)
}
