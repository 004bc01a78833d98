package provisioner

import (
	"context"
	"log/slog"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// Scheduler fires due schedules: for each organization the catalog's index
// says has one due, it creates the tasks in the tenant's own scope (the
// application role with its organization set), wherever its data lives.
// Several schedulers may run: an organization is claimed under a lease and
// each schedule only fires while its due time is unchanged, so every due
// time makes one task.
type Scheduler struct {
	store     *catalog.Store
	schedules *tenantdb.Schedules
	log       *slog.Logger
	// Poll is how often an idle scheduler looks for due organizations;
	// Lease how long a claimed organization is skipped by the others.
	Poll, Lease time.Duration
	// Created, when set, is told of every task a schedule made (events).
	Created func(ctx context.Context, t tenancy.Tenant, task tenantdb.Task)
}

// NewScheduler returns a scheduler over the catalog and the tenant stores.
func NewScheduler(store *catalog.Store, schedules *tenantdb.Schedules, log *slog.Logger) *Scheduler {
	return &Scheduler{store: store, schedules: schedules, log: log, Poll: time.Second, Lease: 30 * time.Second}
}

// Run fires schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	for ctx.Err() == nil {
		orgID, err := s.store.ClaimDueOrganization(ctx, s.Lease)
		switch {
		case err == nil:
			if err := s.visit(ctx, orgID); err != nil && ctx.Err() == nil {
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

// later is when an organization that cannot fire now is looked at again.
const later = time.Minute

// visit fires one organization's due schedules and records when it next
// has one. Pending and suspended organizations, and ones whose database
// is not serving, fire nothing now.
func (s *Scheduler) visit(ctx context.Context, orgID string) error {
	t, err := s.store.Tenant(ctx, orgID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return s.store.SetScheduleDue(ctx, orgID, nil)
	}
	if err != nil {
		return err
	}
	if t.Organization.Status != tenancy.StatusActive || !t.Placement.DatabaseReady || t.Placement.State != tenancy.PlacementReady {
		retry := time.Now().Add(later)
		return s.store.SetScheduleDue(ctx, orgID, &retry)
	}
	created, next, err := s.schedules.Fire(ctx, t, func(d tenantdb.Due) (*time.Time, error) {
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
	return s.store.SetScheduleDue(ctx, orgID, next)
}
