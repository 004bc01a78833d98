package provisioner

import (
	"context"
	"log/slog"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// DefaultMaxFiresPerVisit is Scheduler.MaxFiresPerVisit unless set.
const DefaultMaxFiresPerVisit = 100

// Scheduler fires due schedules: for each organization the catalog's index
// says has one due, it creates the tasks in the tenant's own scope (the
// application role with its organization set), wherever its data lives.
// Several schedulers may run: an organization is claimed under a lease and
// each schedule only fires while its due time is unchanged, so every due
// time makes one task.
//
// Organizations are visited in the order their schedules came due, and a
// visit fires a bounded number of tasks: an organization with more due
// than that is due again at once, queued behind every organization due
// before it, so one tenant's backlog delays the others by one visit at
// most.
type Scheduler struct {
	store     *catalog.Store
	schedules *tenantdb.Schedules
	log       *slog.Logger
	// Poll is how often an idle scheduler looks for due organizations;
	// Lease how long a claimed organization is skipped by the others.
	Poll, Lease time.Duration
	// MaxFiresPerVisit is the most tasks one visit of an organization
	// creates, in one transaction of its database (default
	// DefaultMaxFiresPerVisit; zero or less means the default). The rest
	// of its due schedules fire on its next visits.
	MaxFiresPerVisit int
	// Created, when set, is told of every task a schedule made (events).
	Created func(ctx context.Context, t tenancy.Tenant, task tenantdb.Task)
}

// NewScheduler returns a scheduler over the catalog and the tenant stores.
// The store decides which tenants' databases may serve (see
// catalog.Store.RequireTenantVersion): a scheduler fires nothing where the
// gateway would refuse requests.
func NewScheduler(store *catalog.Store, schedules *tenantdb.Schedules, log *slog.Logger) *Scheduler {
	return &Scheduler{store: store, schedules: schedules, log: log, Poll: time.Second, Lease: 30 * time.Second,
		MaxFiresPerVisit: DefaultMaxFiresPerVisit}
}

// Run fires schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	for ctx.Err() == nil {
		orgID, err := s.step(ctx)
		switch {
		case err == nil:
			continue
		case orgID != "":
			if ctx.Err() == nil {
				s.log.Warn("firing schedules failed; retrying after the lease", "organization", orgID, "err", err)
			}
			continue
		case tenancy.ErrorCode(err) != tenancy.CodeNotFound && ctx.Err() == nil:
			s.log.Warn("looking for due schedules failed", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.Poll):
		}
	}
}

// step claims the organization due the longest and visits it. It returns
// the organization claimed ("" when none), and not_found when none is due.
func (s *Scheduler) step(ctx context.Context) (string, error) {
	claim, err := s.store.ClaimDueOrganization(ctx, s.Lease)
	if err != nil {
		return "", err
	}
	return claim.OrganizationID, s.visit(ctx, claim)
}

// later is when an organization that cannot fire now is looked at again.
const later = time.Minute

// visit fires one organization's due schedules and records when it next
// has one. Pending and suspended organizations, ones being moved, and ones
// whose database is not serving (see catalog.Store.Tenant) fire nothing
// now.
func (s *Scheduler) visit(ctx context.Context, claim catalog.DueClaim) error {
	orgID := claim.OrganizationID
	t, err := s.store.Tenant(ctx, orgID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return s.store.SetScheduleDue(ctx, claim, nil)
	}
	if err != nil {
		return err
	}
	if t.Organization.Status != tenancy.StatusActive || !t.Placement.DatabaseReady || t.Placement.State != tenancy.PlacementReady {
		retry := time.Now().Add(later)
		return s.store.SetScheduleDue(ctx, claim, &retry)
	}
	limit := s.MaxFiresPerVisit
	if limit <= 0 {
		limit = DefaultMaxFiresPerVisit
	}
	created, next, err := s.schedules.Fire(ctx, t, limit, func(d tenantdb.Due) (*time.Time, error) {
		at, err := tenantdb.NextRun(d.Cron, time.Now())
		if err != nil || at.IsZero() {
			return nil, err
		}
		return &at, nil
	})
	if err != nil {
		return err
	}
	for _, task := range created {
		s.log.Info("schedule fired", "organization", orgID, "task", task.ID)
		if s.Created != nil {
			s.Created(ctx, t, task)
		}
	}
	// Schedules left due (past the limit) make next a past time: the
	// catalog records it as now, behind the organizations due before.
	return s.store.SetScheduleDue(ctx, claim, next)
}
