package provisioner

import (
	"context"
	"fmt"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// moveDeps is what a tier move needs, built from the provisioner: the
// dedicated target is registered and provisioned as a new organization's
// would be.
func (p *Provisioner) moveDeps() move.Deps {
	return move.Deps{
		Catalog: p.store,
		Publish: p.Publish,
		CreateDedicated: func(ctx context.Context, slug string) (tenancy.Database, error) {
			db, err := p.RegisterDedicated(ctx, slug)
			if err != nil {
				return db, err
			}
			if err := p.ProvisionDatabase(ctx, db.ID, func(string) {}); err != nil {
				return db, err
			}
			return p.store.Database(ctx, db.ID)
		},
		SharedDatabase: p.store.SharedDatabase,
		DropDatabase: func(ctx context.Context, db tenancy.Database) error {
			name, err := schema.DatabaseName(db.DSN)
			if err != nil {
				return err
			}
			return schema.DropDatabase(ctx, db.DSN, name)
		},
		Log: p.log,
	}
}

// runMoveJob runs a move job: the tier move, then the plan change that
// asked for it, if any, through ChangePlan. Both are idempotent, so a job
// run again after a crash converges: the move finds the tenant already
// there, and the plan change finds the placement matching the plan.
func (p *Provisioner) runMoveJob(ctx context.Context, job catalog.Job, step func(string)) error {
	var pl catalog.MovePayload
	if err := decodePayload(job, &pl); err != nil {
		return err
	}
	if job.OrganizationID == nil {
		return nil // the organization is gone
	}
	orgID := *job.OrganizationID
	// Writes are refused from the mark until the target is unfenced,
	// early in the cleanup.
	timed, done := p.Metrics.MoveTimer(pl.To, move.StepMark, move.StepCleanup, step)
	err := move.Move(ctx, p.moveDeps(), orgID, pl.To, timed)
	done(err)
	if err != nil || pl.Plan == "" {
		return err
	}
	step("plan " + string(pl.Plan))
	if p.ChangePlan == nil {
		return fmt.Errorf("move job %s: the tenant moved, but no plan changer is configured to set plan %s", job.ID, pl.Plan)
	}
	return p.ChangePlan(ctx, orgID, pl.Plan)
}
