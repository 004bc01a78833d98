package tenancy

import (
	"fmt"
	"regexp"
	"time"
)

// Plan is an organization's commercial plan.
type Plan string

// Plans on sale. Enterprise tenants get a dedicated database.
const (
	PlanFree       Plan = "free"
	PlanStarter    Plan = "starter"
	PlanPro        Plan = "pro"
	PlanEnterprise Plan = "enterprise"
)

// Plans lists every plan, cheapest first.
var Plans = []Plan{PlanFree, PlanStarter, PlanPro, PlanEnterprise}

// ParsePlan returns the plan named s or an invalid_request error.
func ParsePlan(s string) (Plan, error) {
	for _, p := range Plans {
		if string(p) == s {
			return p, nil
		}
	}
	return "", Errorf(CodeInvalid, "plan: must be one of free, starter, pro, enterprise (got %q)", s)
}

// Dedicated reports whether tenants on this plan get a database of their own.
func (p Plan) Dedicated() bool { return p == PlanEnterprise }

// Limits are what a plan allows. Zero means "not set" in overrides.
type Limits struct {
	MaxAgents       int `json:"maxAgents"`
	MaxAgentMinutes int `json:"maxAgentMinutes"`
	RPS             int `json:"rps"`
	// MaxSchedules bounds an organization's live schedules: each can
	// create a task a minute, so unbounded schedules multiply writes.
	MaxSchedules int `json:"maxSchedules"`
	// MaxTokens bounds the model tokens of a billing period; 0 in a plan
	// means unlimited (enterprise).
	MaxTokens int64 `json:"maxTokens"`
}

// Status is an organization's lifecycle state.
type Status string

// Organization states.
const (
	StatusPending   Status = "pending"
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
)

// Placement kinds: where an organization's rows live.
const (
	KindShared    = "shared"
	KindDedicated = "dedicated"
)

// Organization is a tenant as the catalog knows it.
type Organization struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Plan      Plan      `json:"plan"`
	Status    Status    `json:"status"`
	Placement string    `json:"placement"`
	CreatedAt time.Time `json:"createdAt"`
	// Overrides are limits an operator set for this organization; zero
	// fields take the plan's.
	Overrides Limits `json:"-"`
	// PastDueSince is when its payment became overdue, nil when it is not.
	PastDueSince *time.Time `json:"-"`
}

// Apply returns the plan's limits with the non-zero overrides in place.
func (o Limits) Apply(plan Limits) Limits {
	if o.MaxAgents > 0 {
		plan.MaxAgents = o.MaxAgents
	}
	if o.MaxAgentMinutes > 0 {
		plan.MaxAgentMinutes = o.MaxAgentMinutes
	}
	if o.RPS > 0 {
		plan.RPS = o.RPS
	}
	if o.MaxSchedules > 0 {
		plan.MaxSchedules = o.MaxSchedules
	}
	if o.MaxTokens > 0 {
		plan.MaxTokens = o.MaxTokens
	}
	return plan
}

// Placement says which database holds an organization's data.
type Placement struct {
	OrganizationID string
	DatabaseID     string
	Kind           string // KindShared or KindDedicated
	// Epoch grows every time the organization moves; a stale cache entry
	// carries an older epoch.
	Epoch int64
	// State is "ready", or "moving" while a tier move copies the data.
	State string
	// DatabaseReady is false while the database is dirty (a migration
	// failed) or not in service: its tenants are refused, never served
	// against the wrong schema.
	DatabaseReady bool
}

// Placement states.
const (
	PlacementReady  = "ready"
	PlacementMoving = "moving"
)

// Database is a Postgres database that holds tenant data.
type Database struct {
	ID   string
	Name string
	Kind string // KindShared or KindDedicated
	// DSN connects as the schema owner; tenant traffic derives an
	// application-role DSN from it.
	DSN   string
	State string
	Dirty bool
	// Quarantined: the isolation audit found it unsafe; its tenants are
	// refused until a re-audit or an operator's acceptance releases it.
	Quarantined bool
	// ServerID is the registered server holding it; empty for the shared
	// database and for dedicated ones on dedicated.server_url.
	ServerID string
}

// Role is a user's role within its organization.
type Role string

// Roles, strongest first.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// AtLeast reports whether r is as strong as min.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() }

func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// ParseRole returns the role named s or an invalid_request error.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", Errorf(CodeInvalid, "role: must be one of owner, admin, member (got %q)", s)
	}
	return r, nil
}

// User is a person who belongs to one organization.
type User struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organizationId"`
	Email          string    `json:"email"`
	Role           Role      `json:"role"`
	CreatedAt      time.Time `json:"createdAt"`
}

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidateSlug checks that s can name an organization in URLs, hosts and
// database names.
func ValidateSlug(s string) error {
	if !slugPattern.MatchString(s) {
		return Errorf(CodeInvalid, "slug: must be 1-40 lowercase letters, digits or inner hyphens (got %q)", s)
	}
	return nil
}

// Tenant is a request's resolved organization and where its data lives.
type Tenant struct {
	Organization Organization
	Placement    Placement
}

// String names the tenant in logs.
func (t Tenant) String() string {
	return fmt.Sprintf("%s(%s)", t.Organization.Slug, t.Organization.ID)
}

// Change kinds of the change feed: what a replica must forget or refuse.
const (
	ChangeOrganization = "organization" // subject: organization id; its cached tenant is stale
	ChangeUser         = "user"         // subject: user id; its cached state is stale
	ChangeToken        = "token"        // subject: a revoked session's jti; Until: its expiry
	ChangeKey          = "key"          // subject: an API key's prefix; its cached record is stale
)

// Change is one entry of the change feed.
type Change struct {
	ID      int64     `json:"id"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Until   time.Time `json:"until,omitzero"`
	At      time.Time `json:"at"`
}
