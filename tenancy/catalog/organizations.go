package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

const orgColumns = `o.id::text, o.slug, o.name, o.plan, o.status, d.kind, o.created_at,
	coalesce(o.max_agents, 0), coalesce(o.max_agent_minutes, 0), coalesce(o.rps, 0), coalesce(o.max_tokens, 0), o.past_due_since`

const orgFrom = ` FROM organizations o
	JOIN placements p ON p.organization_id = o.id
	JOIN databases d ON d.id = p.database_id `

func scanOrg(row pgx.Row) (tenancy.Organization, error) {
	var o tenancy.Organization
	err := row.Scan(orgFields(&o)...)
	return o, err
}

// orgFields are the scan targets of orgColumns.
func orgFields(o *tenancy.Organization) []any {
	return []any{&o.ID, &o.Slug, &o.Name, &o.Plan, &o.Status, &o.Placement, &o.CreatedAt,
		&o.Overrides.MaxAgents, &o.Overrides.MaxAgentMinutes, &o.Overrides.RPS, &o.Overrides.MaxTokens, &o.PastDueSince}
}

// NewOrganization is what CreateOrganization needs.
type NewOrganization struct {
	Slug, Name string
	Plan       tenancy.Plan
	Status     tenancy.Status
	DatabaseID string
	// Owner is created with the organization when OwnerEmail is set.
	OwnerEmail, OwnerPasswordHash string
}

// CreateOrganization records an organization, its placement and, if given,
// its owner, in one transaction. A taken slug or email is a conflict.
func (s *Store) CreateOrganization(ctx context.Context, n NewOrganization) (tenancy.Organization, error) {
	org, _, err := s.createOrganization(ctx, n, nil)
	return org, err
}

// NewJob is a job to queue with the organization it is for.
type NewJob struct {
	Kind    string
	Payload any
}

// CreateOrganizationWithJob is CreateOrganization that also queues job for
// the new organization, in the same transaction: a process killed half-way
// leaves both or neither, never an organization whose database no job
// will make (and whose slug a retry would find taken).
func (s *Store) CreateOrganizationWithJob(ctx context.Context, n NewOrganization, job NewJob) (tenancy.Organization, Job, error) {
	return s.createOrganization(ctx, n, &job)
}

func (s *Store) createOrganization(ctx context.Context, n NewOrganization, job *NewJob) (tenancy.Organization, Job, error) {
	var org tenancy.Organization
	var queued Job
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO organizations (slug, name, plan, status) VALUES ($1, $2, $3, $4) RETURNING id::text`,
			n.Slug, n.Name, n.Plan, n.Status).Scan(&id)
		if err != nil {
			return interpret(err, fmt.Sprintf("organization %q", n.Slug))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO placements (organization_id, database_id) VALUES ($1, $2)`, id, n.DatabaseID); err != nil {
			return interpret(err, "placement")
		}
		if n.OwnerEmail != "" {
			_, err := tx.Exec(ctx, `INSERT INTO users (organization_id, email, password_hash, role) VALUES ($1, $2, $3, 'owner')`,
				id, NormalizeEmail(n.OwnerEmail), n.OwnerPasswordHash)
			if err != nil {
				return interpret(err, "user with this email")
			}
		}
		if job != nil {
			if queued, err = insertJob(ctx, tx, job.Kind, id, job.Payload); err != nil {
				return err
			}
		}
		org, err = scanOrg(tx.QueryRow(ctx, `SELECT `+orgColumns+orgFrom+`WHERE o.id = $1`, id))
		return err
	})
	return org, queued, err
}

// Organization returns the organization with id.
func (s *Store) Organization(ctx context.Context, id string) (tenancy.Organization, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+orgFrom+`WHERE o.id = $1`, id))
	return o, interpret(err, "organization")
}

// OrganizationBySlug returns the organization with slug.
func (s *Store) OrganizationBySlug(ctx context.Context, slug string) (tenancy.Organization, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+orgFrom+`WHERE o.slug = $1`, slug))
	return o, interpret(err, fmt.Sprintf("organization %q", slug))
}

// OrganizationDetail is an organization as operators see it.
type OrganizationDetail struct {
	tenancy.Organization
	DatabaseID string `json:"databaseId"`
	Database   string `json:"database"`
	Epoch      int64  `json:"epoch"`
	// PlacementState is ready, or moving while a move runs or after one
	// that stopped half-way.
	PlacementState   string `json:"placementState"`
	Users            int    `json:"users"`
	AgentMinutesUsed int64  `json:"agentMinutesUsed"`
	// LimitOverrides are an operator's limits; zero fields take the plan's.
	LimitOverrides tenancy.Limits `json:"limitOverrides"`
	// Audit is its database's last isolation verdict ("" before the
	// first); Quarantined, that its database is refused for it.
	Audit       string `json:"audit"`
	Quarantined bool   `json:"quarantined"`
}

// Organizations lists every organization with its placement, by slug.
func (s *Store) Organizations(ctx context.Context) ([]OrganizationDetail, error) {
	return s.details(ctx, "")
}

// details lists organizations as operators see them: every one, or the
// one with slug.
func (s *Store) details(ctx context.Context, slug string) ([]OrganizationDetail, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orgColumns+`, d.id::text, d.name, p.epoch, p.state,
		(SELECT count(*) FROM users u WHERE u.organization_id = o.id),
		CASE WHEN o.period_start < `+periodStartSQL+` THEN 0 ELSE o.agent_minutes_used END,
		coalesce((SELECT a.verdict FROM database_audits a WHERE a.database_id = d.id), ''), d.quarantined`+orgFrom+`
		WHERE $1 = '' OR o.slug = $1 ORDER BY o.slug`, slug)
	if err != nil {
		return nil, interpret(err, "organizations")
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (OrganizationDetail, error) {
		var d OrganizationDetail
		err := row.Scan(append(orgFields(&d.Organization), &d.DatabaseID, &d.Database, &d.Epoch, &d.PlacementState, &d.Users, &d.AgentMinutesUsed,
			&d.Audit, &d.Quarantined)...)
		d.LimitOverrides = d.Overrides
		return d, err
	})
}

// OrganizationDetailBySlug returns one organization as operators see it.
func (s *Store) OrganizationDetailBySlug(ctx context.Context, slug string) (OrganizationDetail, error) {
	found, err := s.details(ctx, slug)
	if err != nil {
		return OrganizationDetail{}, err
	}
	if len(found) == 0 {
		return OrganizationDetail{}, tenancy.Errorf(tenancy.CodeNotFound, "organization %q not found", slug)
	}
	return found[0], nil
}

// Placement returns where the organization's data lives.
func (s *Store) Placement(ctx context.Context, orgID string) (tenancy.Placement, error) {
	var p tenancy.Placement
	err := s.pool.QueryRow(ctx, `
		SELECT p.organization_id::text, p.database_id::text, d.kind, p.epoch, p.state, `+databaseServes+`
		FROM placements p JOIN databases d ON d.id = p.database_id
		WHERE p.organization_id = $1`, orgID, s.minTenantVersion).Scan(&p.OrganizationID, &p.DatabaseID, &p.Kind, &p.Epoch, &p.State, &p.DatabaseReady)
	return p, interpret(err, "placement")
}

// Tenant returns an organization with its placement, what a request needs
// to be admitted and routed, in one query. The gateway and the scheduler
// both decide by it whether the tenant's database may serve now
// (Placement.DatabaseReady, see databaseServes).
func (s *Store) Tenant(ctx context.Context, orgID string) (tenancy.Tenant, error) {
	var t tenancy.Tenant
	o, p := &t.Organization, &t.Placement
	err := s.pool.QueryRow(ctx, `SELECT `+orgColumns+`, p.database_id::text, p.epoch, p.state, `+databaseServes+
		orgFrom+`WHERE o.id = $1`, orgID, s.minTenantVersion).
		Scan(append(orgFields(o), &p.DatabaseID, &p.Epoch, &p.State, &p.DatabaseReady)...)
	p.OrganizationID, p.Kind = o.ID, o.Placement
	return t, interpret(err, "organization")
}

// SetOrganizationStatus moves an organization from one of the states in
// from to status, and returns it; from any other state it is a conflict.
func (s *Store) SetOrganizationStatus(ctx context.Context, slug string, status tenancy.Status, from ...tenancy.Status) (tenancy.Organization, error) {
	fromText := make([]string, len(from))
	for i, f := range from {
		fromText[i] = string(f)
	}
	var id, current string
	err := s.pool.QueryRow(ctx, `
		WITH o AS (SELECT id, status FROM organizations WHERE slug = $1 FOR UPDATE)
		UPDATE organizations SET status = CASE WHEN o.status = ANY($3) THEN $2 ELSE o.status END, updated_at = now()
		FROM o WHERE organizations.id = o.id RETURNING o.id::text, o.status`, slug, status, fromText).Scan(&id, &current)
	if err != nil {
		return tenancy.Organization{}, interpret(err, fmt.Sprintf("organization %q", slug))
	}
	if current != string(status) && !containsStatus(from, tenancy.Status(current)) {
		return tenancy.Organization{}, tenancy.Errorf(tenancy.CodeConflict, "organization %q is %s", slug, current)
	}
	return s.Organization(ctx, id)
}

func containsStatus(list []tenancy.Status, s tenancy.Status) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// OrganizationsOn returns the ids of the organizations placed on a database.
func (s *Store) OrganizationsOn(ctx context.Context, databaseID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT organization_id::text FROM placements WHERE database_id = $1`, databaseID)
	if err != nil {
		return nil, interpret(err, "placements")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, interpret(err, "placements")
}

// SetOrganizationStatusByID sets an organization's status unconditionally.
func (s *Store) SetOrganizationStatusByID(ctx context.Context, id string, status tenancy.Status) error {
	_, err := s.pool.Exec(ctx, `UPDATE organizations SET status = $2, updated_at = now() WHERE id = $1`, id, status)
	return interpret(err, "organization")
}

// DeleteOrganization removes an organization's catalog records (users,
// keys and placement go with it) and its database's record when it was a
// dedicated one that no one else uses.
func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var dbID, kind string
		err := tx.QueryRow(ctx, `SELECT p.database_id::text, d.kind FROM placements p JOIN databases d ON d.id = p.database_id
			WHERE p.organization_id = $1`, id).Scan(&dbID, &kind)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return interpret(err, "organization")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM organizations WHERE id = $1`, id); err != nil {
			return interpret(err, "organization")
		}
		if kind == tenancy.KindDedicated {
			_, err = tx.Exec(ctx, `DELETE FROM databases d WHERE d.id = $1
				AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.database_id = d.id)`, dbID)
		}
		return interpret(err, "database")
	})
}

// SetPlan changes an organization's plan (within its placement tier).
func (s *Store) SetPlan(ctx context.Context, id string, plan tenancy.Plan) error {
	_, err := s.pool.Exec(ctx, `UPDATE organizations SET plan = $2, updated_at = now() WHERE id = $1`, id, plan)
	return interpret(err, "organization")
}
