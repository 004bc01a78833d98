package provisioner

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// tenantTables are the tables that hold an organization's rows, children
// before parents (the order rows are deleted in).
var tenantTables = []string{"idempotency_keys", "schedules", "agent_sessions", "activity_logs", "messages", "tasks", "agents"}

// DeleteOrganization removes an organization for good: its rows from the
// shared database, or its dedicated database, then its catalog records.
// Each step can be run again. Every gateway replica is told twice: before
// (the organization is suspended, its requests refused) and after its
// records are gone, so that no replica keeps serving its credentials,
// users or placement from a cache.
func (p *Provisioner) DeleteOrganization(ctx context.Context, orgID string, step func(string)) error {
	pl, err := p.store.Placement(ctx, orgID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		// Gone already: a retry whose last publish failed tells the
		// replicas now.
		if p.Publish != nil {
			return p.Publish(ctx, orgID)
		}
		return nil
	}
	if err != nil {
		return err
	}
	db, err := p.store.Database(ctx, pl.DatabaseID)
	if err != nil {
		return err
	}
	if p.Publish != nil {
		// Refuse its requests first: the catalog row goes last.
		if err := p.store.SetOrganizationStatusByID(ctx, orgID, tenancy.StatusSuspended); err != nil {
			return err
		}
		if err := p.Publish(ctx, orgID); err != nil {
			return err
		}
	}
	step("delete data")
	if db.Kind == tenancy.KindShared {
		err = deleteRows(ctx, db.DSN, orgID)
	} else {
		err = p.dropDedicated(ctx, db)
	}
	if err != nil {
		return err
	}
	step("delete records")
	if err := p.store.DeleteOrganization(ctx, orgID); err != nil || p.Publish == nil {
		return err
	}
	// Replicas re-read it, find nothing, and drop what they cached.
	return p.Publish(ctx, orgID)
}

func deleteRows(ctx context.Context, dsn, orgID string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", schema.Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range tenantTables {
			if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{t}.Sanitize()+" WHERE organization_id = $1", orgID); err != nil {
				return fmt.Errorf("delete from %s: %w", t, err)
			}
		}
		return nil
	})
}

func (p *Provisioner) dropDedicated(ctx context.Context, db tenancy.Database) error {
	if err := p.store.SetDatabaseState(ctx, db.ID, "dropping"); err != nil {
		return err
	}
	name, err := schema.DatabaseName(db.DSN)
	if err != nil {
		return err
	}
	return schema.DropDatabase(ctx, db.DSN, name)
}

func decodePayload(job catalog.Job, v any) error {
	if err := json.Unmarshal(job.Payload, v); err != nil {
		return tenancy.Errorf(tenancy.CodeInvalid, "job %s: bad payload: %v", job.ID, err)
	}
	return nil
}
