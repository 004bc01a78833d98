package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

// ErrUnauthorized is the one answer to missing, malformed, expired, revoked
// or forged credentials, and to those of a deleted user or organization.
var ErrUnauthorized = tenancy.Errorf(tenancy.CodeUnauthorized, "missing, malformed, expired or revoked credentials")

// maxCredential bounds the credential we parse: a real token or key is a
// few hundred bytes.
const maxCredential = 4096

// Authenticate proves who is calling from an Authorization value: a
// session ("Bearer <jwt>", not revoked, its user still there, with the
// user's current role) or a program ("Key <api key>"). The caller's
// organization must still exist: a deleted organization's tokens and keys
// are refused like forged ones.
func (s *Service) Authenticate(ctx context.Context, authorization string) (tenancy.Identity, error) {
	scheme, cred, _ := strings.Cut(authorization, " ")
	if cred == "" || len(cred) > maxCredential {
		return tenancy.Identity{}, ErrUnauthorized
	}
	var id tenancy.Identity
	var err error
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		id, err = s.session(ctx, cred)
	case strings.EqualFold(scheme, "Key"):
		id, err = s.program(ctx, cred)
	default:
		err = ErrUnauthorized
	}
	if err != nil {
		return id, err
	}
	if _, err := s.Tenants(ctx, id.OrganizationID); err != nil {
		if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
			return id, ErrUnauthorized
		}
		return id, err
	}
	return id, nil
}

func (s *Service) session(ctx context.Context, token string) (tenancy.Identity, error) {
	id, err := s.Tokens.Verify(token)
	if err != nil {
		return id, tenancy.Wrap(err, ErrUnauthorized.Code, ErrUnauthorized.Message)
	}
	if s.Revocations.Revoked(id.TokenID) {
		return id, ErrUnauthorized
	}
	u, err := s.Principals.User(ctx, id.UserID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound || (err == nil && u.OrganizationID != id.OrganizationID) {
		return id, ErrUnauthorized
	}
	if err != nil {
		return id, err
	}
	id.Role = u.Role
	return id, nil
}

func (s *Service) program(ctx context.Context, key string) (tenancy.Identity, error) {
	rec, err := s.Keys.Verify(ctx, key)
	if errors.Is(err, identity.ErrInvalidKey) {
		return tenancy.Identity{}, tenancy.Wrap(err, ErrUnauthorized.Code, ErrUnauthorized.Message)
	}
	if err != nil {
		return tenancy.Identity{}, err
	}
	role, err := s.keyRole(ctx, rec)
	if err != nil {
		return tenancy.Identity{}, err
	}
	s.KeyUsed(rec.ID)
	id := tenancy.Identity{UserID: rec.CreatedBy, OrganizationID: rec.OrganizationID, Role: role, KeyID: rec.ID, KeyPrefix: rec.Prefix}
	if rec.ExpiresAt != nil {
		id.ExpiresAt = *rec.ExpiresAt // an event socket on the key closes then
	}
	return id, nil
}

// keyRole is the role a key acts with: its recorded role (lowered for good
// whenever its creator is demoted, see catalog.SetUserRole), and lower
// still if its creator's current role is lower. A key outlives its
// creator with the lowest role it ever had.
func (s *Service) keyRole(ctx context.Context, rec identity.KeyRecord) (tenancy.Role, error) {
	if rec.CreatedBy == "" {
		return rec.Role, nil
	}
	u, err := s.Principals.User(ctx, rec.CreatedBy)
	switch {
	case tenancy.ErrorCode(err) == tenancy.CodeNotFound:
		return rec.Role, nil
	case err != nil:
		return "", err
	case !u.Role.AtLeast(rec.Role):
		return u.Role, nil
	}
	return rec.Role, nil
}

// SignupInput is the body of a signup.
type SignupInput struct {
	Email            string `json:"email"`
	Password         string `json:"password"`
	OrganizationName string `json:"organizationName"`
	OrganizationSlug string `json:"organizationSlug"`
}

func (in SignupInput) validate() error {
	if err := firstError(CheckEmail(in.Email), CheckPassword(in.Password),
		tenancy.CheckName("organizationName", in.OrganizationName, true, 200)); err != nil {
		return err
	}
	if in.OrganizationSlug != "" {
		if err := tenancy.ValidateSlug(in.OrganizationSlug); err != nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "organizationSlug: must be 1-40 lowercase letters, digits or inner hyphens")
		}
	}
	return nil
}

// Signed is the outcome of a signup: Token is empty for a waitlisted one.
type Signed struct {
	User         tenancy.User         `json:"user"`
	Organization tenancy.Organization `json:"organization"`
	Token        string               `json:"token,omitempty"`
}

// signupsPerHour per client address: enough for an office, too few to fill
// the catalog.
const signupsPerHour = 20

// Signup creates an organization (free plan) and its owner: active with a
// session in open mode, pending (waitlisted) otherwise. Never replayed.
func (s *Service) Signup(ctx context.Context, in SignupInput, clientAddr string) (Signed, error) {
	if err := in.validate(); err != nil {
		return Signed{}, err
	}
	if n, reset, err := s.Throttle.Hit(ctx, "signup:ip:"+clientAddr, time.Hour); err == nil && n > signupsPerHour {
		return Signed{}, RateLimited("too many signups from this address", reset)
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return Signed{}, err
	}
	status := tenancy.StatusPending
	if s.SignupMode == "open" {
		status = tenancy.StatusActive
	}
	org, err := s.createWithSlug(ctx, in, hash, status)
	if err != nil {
		return Signed{}, err
	}
	cred, err := s.Catalog.UserByEmail(ctx, in.Email)
	if err != nil {
		return Signed{}, err
	}
	out := Signed{User: cred.User, Organization: org}
	if status == tenancy.StatusActive {
		out.Token, _, err = s.Tokens.Issue(cred.User)
	}
	return out, err
}

// createWithSlug creates the organization under the requested slug, or
// under one derived from its name, trying numbered variants when taken,
// then random ones.
func (s *Service) createWithSlug(ctx context.Context, in SignupInput, hash string, status tenancy.Status) (tenancy.Organization, error) {
	if _, err := s.Catalog.UserByEmail(ctx, in.Email); err == nil {
		return tenancy.Organization{}, errEmailTaken
	}
	if in.OrganizationSlug != "" {
		org, err := s.CreateOrganization(ctx, in.OrganizationSlug, in.OrganizationName, in.Email, hash, status)
		return org, s.emailConflict(ctx, in.Email, err)
	}
	base := deriveSlug(in.OrganizationName)
	for i := 1; ; i++ {
		slug := base
		switch {
		case i > 5:
			slug = fmt.Sprintf("%s-%s", strings.TrimRight(base[:min(len(base), 30)], "-"), randomSuffix())
		case i > 1:
			slug = fmt.Sprintf("%s-%d", strings.TrimRight(base[:min(len(base), 34)], "-"), i)
		}
		org, err := s.CreateOrganization(ctx, slug, in.OrganizationName, in.Email, hash, status)
		if tenancy.ErrorCode(err) != tenancy.CodeConflict || i > 12 {
			return org, s.emailConflict(ctx, in.Email, err)
		}
		if _, err := s.Catalog.UserByEmail(ctx, in.Email); err == nil {
			return tenancy.Organization{}, errEmailTaken
		}
	}
}

var errEmailTaken = tenancy.Errorf(tenancy.CodeConflict, "email: is already registered")

// emailConflict names the email as the conflict when a racing signup took
// it between the check and the insert.
func (s *Service) emailConflict(ctx context.Context, email string, err error) error {
	if tenancy.ErrorCode(err) == tenancy.CodeConflict {
		if _, lookup := s.Catalog.UserByEmail(ctx, email); lookup == nil {
			return errEmailTaken
		}
	}
	return err
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// deriveSlug makes a slug of an organization's name: "Acme Corp!" →
// "acme-corp"; a name with no Latin letters or digits gets a random one.
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

// randomSuffix is 40 random bits in hex: two signups of the same name
// collide once in a trillion.
func randomSuffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CheckEmail refuses what is not a plain address like name@example.com.
func CheckEmail(email string) error {
	if err := tenancy.CheckName("email", email, true, 254); err != nil {
		return err
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndex(email, "@")+1:], ".") {
		return tenancy.Errorf(tenancy.CodeInvalid, "email: must be an address like name@example.com")
	}
	return nil
}

// CheckPassword refuses passwords under identity.MinPasswordLength.
func CheckPassword(password string) error {
	if len([]rune(password)) < identity.MinPasswordLength {
		return tenancy.Errorf(tenancy.CodeInvalid, "password: must be at least %d characters", identity.MinPasswordLength)
	}
	return tenancy.CheckText("password", password, true, 1024)
}

// LoginInput is the body of a login.
type LoginInput struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// LoggedIn is a new session.
type LoggedIn struct {
	Token        string               `json:"token"`
	ExpiresAt    time.Time            `json:"expiresAt"`
	User         tenancy.User         `json:"user"`
	Organization tenancy.Organization `json:"organization"`
}

var errBadLogin = tenancy.Errorf(tenancy.CodeUnauthorized, "wrong email or password")

// Login exchanges email and password for a session token. An unknown email
// and a wrong password get the same answer after the same work. Every
// guess is counted before its password is checked, atomically, so however
// many arrive at once at most the limit of them are evaluated in a window;
// a correct one takes its count back. Never replayed.
func (s *Service) Login(ctx context.Context, in LoginInput, clientAddr string) (LoggedIn, error) {
	if err := firstError(tenancy.CheckName("email", in.Email, true, 320), tenancy.CheckText("password", in.Password, true, 1024)); err != nil {
		return LoggedIn{}, err
	}
	keys := loginKeys(in.Email, clientAddr)
	if err := s.countGuess(ctx, keys); err != nil {
		return LoggedIn{}, err
	}
	user, err := s.checkLogin(ctx, in)
	if err != nil {
		if !errors.Is(err, errBadLogin) {
			s.undoGuess(ctx, keys) // not a guess judged: the hash slot or the catalog failed
		}
		return LoggedIn{}, err
	}
	_ = s.Throttle.Reset(ctx, keys.account)
	s.undoGuess(ctx, keys)
	org, err := s.Catalog.Organization(ctx, user.OrganizationID)
	if err != nil {
		return LoggedIn{}, err
	}
	token, exp, err := s.Tokens.Issue(user)
	if err != nil {
		return LoggedIn{}, err
	}
	return LoggedIn{Token: token, ExpiresAt: exp, User: user, Organization: org}, nil
}

func (s *Service) checkLogin(ctx context.Context, in LoginInput) (tenancy.User, error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return tenancy.User{}, err
	}
	defer release()
	cred, err := s.Catalog.UserByEmail(ctx, in.Email)
	if err != nil && tenancy.ErrorCode(err) != tenancy.CodeNotFound {
		return tenancy.User{}, err
	}
	hash := cred.PasswordHash
	if err != nil {
		hash = s.dummyHash()
	}
	if perr := identity.CheckPassword(hash, in.Password); err != nil || perr != nil {
		if perr != nil && !errors.Is(perr, identity.ErrPasswordMismatch) {
			s.Log.Error("password check", "err", perr)
		}
		return tenancy.User{}, errBadLogin
	}
	return cred.User, nil
}

type throttleKeys struct{ account, address, spread string }

// loginKeys: guesses per (account, address) lock out one guesser; per
// address, one machine guessing many accounts; per account across all
// addresses (at a higher bar), a botnet on one account. The victim's own
// address is only refused by the last, and only until the window ends.
func loginKeys(email, addr string) throttleKeys {
	e := catalog.NormalizeEmail(email)
	return throttleKeys{account: "login:acct:" + e + "|" + addr, address: "login:ip:" + addr, spread: "login:email:" + e}
}

func (k throttleKeys) all() []string { return []string{k.account, k.address, k.spread} }

// countGuess counts a guess under each key before it is judged, and
// refuses it when any count passes its limit. A counter that fails lets
// the guess through: logins must not stop because Redis did (the
// in-process fallback counts then).
func (s *Service) countGuess(ctx context.Context, k throttleKeys) error {
	limits := []int64{int64(s.LoginThrottle.MaxFailures), int64(s.LoginThrottle.MaxFailuresPerIP), int64(10 * s.LoginThrottle.MaxFailures)}
	var refused time.Duration
	for i, key := range k.all() {
		n, reset, err := s.Throttle.Hit(ctx, key, s.LoginThrottle.Window)
		if err == nil && n > limits[i] {
			refused = max(refused, reset)
		}
	}
	if refused > 0 {
		s.undoGuess(ctx, k) // refused unjudged: it is no guess
		return RateLimited("too many failed logins; try again later", refused)
	}
	return nil
}

// undoGuess takes back a guess that turned out not to be a failure.
func (s *Service) undoGuess(ctx context.Context, k throttleKeys) {
	for _, key := range k.all() {
		_ = s.Throttle.Undo(ctx, key)
	}
}

// Logout revokes the session's token on every replica, durably.
func (s *Service) Logout(ctx context.Context, id tenancy.Identity) error {
	if id.TokenID == "" {
		return tenancy.Errorf(tenancy.CodeInvalid, "logout ends a session; revoke an API key with DELETE /api/api-keys/{id}")
	}
	if err := s.Catalog.RevokeToken(ctx, id.TokenID, id.UserID, id.OrganizationID, id.ExpiresAt); err != nil {
		return err
	}
	s.Revocations.Add(id.TokenID, id.ExpiresAt)
	return s.Changes.Publish(ctx, tenancy.ChangeToken, id.TokenID, id.ExpiresAt)
}

// Me is the caller and its organization; User is nil for an API key whose
// creator is gone.
type Me struct {
	User         *tenancy.User        `json:"user"`
	Organization tenancy.Organization `json:"organization"`
}

// WhoAmI returns the caller and its organization.
func (s *Service) WhoAmI(ctx context.Context, id tenancy.Identity) (Me, error) {
	var me Me
	if id.UserID != "" {
		u, err := s.Principals.User(ctx, id.UserID)
		if err == nil {
			me.User = &u
		} else if tenancy.ErrorCode(err) != tenancy.CodeNotFound {
			return me, err
		}
	}
	org, err := s.Catalog.Organization(ctx, id.OrganizationID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return me, ErrUnauthorized // deleted under the credential
	}
	me.Organization = org
	return me, err
}
