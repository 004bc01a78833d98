package main

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// moveHandlers runs move jobs: the tier move, then the plan change that
// asked for it, if any.
func moveHandlers(p *provisioner.Provisioner, store *catalog.Store, log *slog.Logger, metrics *provisioner.Metrics) map[string]provisioner.Handler {
	deps := move.Deps{
		Catalog: store,
		Publish: p.Publish,
		CreateDedicated: func(ctx context.Context, slug string) (tenancy.Database, error) {
			db, err := p.RegisterDedicated(ctx, slug)
			if err != nil {
				return db, err
			}
			if err := p.ProvisionDatabase(ctx, db.ID, func(string) {}); err != nil {
				return db, err
			}
			return store.Database(ctx, db.ID)
		},
		SharedDatabase: store.SharedDatabase,
		DropDatabase: func(ctx context.Context, db tenancy.Database) error {
			name, err := schema.DatabaseName(db.DSN)
			if err != nil {
				return err
			}
			return schema.DropDatabase(ctx, db.DSN, name)
		},
		Log: log,
	}
	return map[string]provisioner.Handler{
		catalog.JobMove: func(ctx context.Context, job catalog.Job, step func(string)) error {
			var pl catalog.MovePayload
			if err := json.Unmarshal(job.Payload, &pl); err != nil {
				return tenancy.Errorf(tenancy.CodeInvalid, "move job %s: bad payload: %v", job.ID, err)
			}
			if job.OrganizationID == nil {
				return nil // the organization is gone
			}
			orgID := *job.OrganizationID
			// Writes are refused from the mark until the target is
			// unfenced, early in the cleanup.
			timed, done := metrics.MoveTimer(pl.To, move.StepMark, move.StepCleanup, step)
			err := move.Move(ctx, deps, orgID, pl.To, timed)
			done(err)
			if err != nil {
				return err
			}
			if pl.Plan == "" {
				return nil
			}
			step("plan " + string(pl.Plan))
			if err := store.SetPlan(ctx, orgID, pl.Plan); err != nil {
				return err
			}
			return p.Publish(ctx, orgID)
		},
	}
}
