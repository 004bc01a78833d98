package provisioner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// ExportOrganization writes the archive of one organization's data (see
// provisioner/archive) to w, from whichever database holds it, in one
// snapshot; the tenant keeps writing meanwhile. withUsers adds its users'
// emails and roles; no password or key hash is ever exported.
func (p *Provisioner) ExportOrganization(ctx context.Context, slug string, w io.Writer, withUsers bool) (archive.Manifest, error) {
	org, err := p.store.OrganizationBySlug(ctx, slug)
	if err != nil {
		return archive.Manifest{}, err
	}
	var opts archive.ExportOptions
	if withUsers {
		if opts.Users, err = p.archiveUsers(ctx, org.ID); err != nil {
			return archive.Manifest{}, err
		}
	}
	conn, err := p.tenantConn(ctx, org.ID)
	if err != nil {
		return archive.Manifest{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return archive.Export(ctx, w, conn, org, opts)
}

func (p *Provisioner) archiveUsers(ctx context.Context, orgID string) ([]archive.User, error) {
	var out []archive.User
	page := tenancy.Page{Limit: tenancy.MaxLimit}
	for {
		users, next, err := p.store.Users(ctx, orgID, page)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			out = append(out, archive.User{Email: u.Email, Role: u.Role})
		}
		if next == "" {
			return out, nil
		}
		page.Cursor = next
	}
}

// tenantConn connects, as the schema owner, to the database that holds an
// organization's data.
func (p *Provisioner) tenantConn(ctx context.Context, orgID string) (*pgx.Conn, error) {
	pl, err := p.store.Placement(ctx, orgID)
	if err != nil {
		return nil, err
	}
	db, err := p.store.Database(ctx, pl.DatabaseID)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(db.DSN)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", db.Name, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	cfg.RuntimeParams["application_name"] = "tenantgate-archive"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, tenancy.Unavailable(fmt.Errorf("connect to %s: %w", schema.Redact(db.DSN), err), 30*time.Second)
	}
	return conn, nil
}

// ImportOrganization is what an import takes: the new organization's slug,
// and a name and plan that default to the archive's.
type ImportOrganization struct {
	Slug, Name string
	Plan       tenancy.Plan
}

// ImportOrganization creates a new organization from an archive: placed
// as its plan says (an enterprise one gets its own database, provisioned
// here), its rows loaded under its new id and verified table by table, and
// only then made active. open is called twice: the archive is verified
// whole before anything is created. If anything fails, what was created
// is removed: no organization, no rows, no database is left behind.
func (p *Provisioner) ImportOrganization(ctx context.Context, open func() (io.ReadCloser, error), req ImportOrganization) (tenancy.Organization, error) {
	m, err := verifyArchive(open)
	if err != nil {
		return tenancy.Organization{}, err
	}
	if req.Name == "" {
		req.Name = m.Organization.Name
	}
	if req.Plan == "" {
		req.Plan = m.Organization.Plan
	}
	if err := tenancy.CheckName("name", req.Name, true, 200); err != nil {
		return tenancy.Organization{}, err
	}
	// Suspended until its data is in: nobody may write to it half-loaded.
	org, err := p.CreateOrganization(ctx, CreateOrganization{Slug: req.Slug, Name: req.Name, Plan: req.Plan, Status: tenancy.StatusSuspended})
	if err != nil {
		return org, err
	}
	if err := p.loadArchive(ctx, open, org.ID); err != nil {
		if derr := p.DeleteOrganization(context.WithoutCancel(ctx), org.ID, func(string) {}); derr != nil {
			return org, errors.Join(err, fmt.Errorf("removing the half-made organization %s: %w", org.Slug, derr))
		}
		return tenancy.Organization{}, err
	}
	if err := p.store.SetOrganizationStatusByID(ctx, org.ID, tenancy.StatusActive); err != nil {
		return org, err
	}
	org.Status = tenancy.StatusActive
	return org, p.publish(ctx, org.ID)
}

func verifyArchive(open func() (io.ReadCloser, error)) (archive.Manifest, error) {
	r, err := open()
	if err != nil {
		return archive.Manifest{}, err
	}
	defer r.Close()
	return archive.Verify(r)
}

func (p *Provisioner) loadArchive(ctx context.Context, open func() (io.ReadCloser, error), orgID string) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	conn, err := p.tenantConn(ctx, orgID)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = archive.Import(ctx, r, conn, orgID, archive.ImportOptions{})
	return err
}

// RestoreOrganization replaces an organization's data, in place, with an
// archive of the same organization, all or nothing. While it runs the
// tenant is fenced in its database, as during a move: reads go on, writes
// get 503 with Retry-After. A restore that fails leaves the old data and
// lifts the fence; one killed leaves the old data and the fence, and
// running it again completes it. It cannot overlap a move.
func (p *Provisioner) RestoreOrganization(ctx context.Context, slug string, r io.Reader) (archive.Manifest, error) {
	org, err := p.store.OrganizationBySlug(ctx, slug)
	if err != nil {
		return archive.Manifest{}, err
	}
	unlock, err := p.store.LockMove(ctx, org.ID)
	if err != nil {
		return archive.Manifest{}, err
	}
	defer unlock()
	pl, err := p.store.Placement(ctx, org.ID)
	if err != nil {
		return archive.Manifest{}, err
	}
	conn, err := p.tenantConn(ctx, org.ID)
	if err != nil {
		return archive.Manifest{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := setFence(ctx, conn, org.ID, pl.Epoch, true); err != nil {
		return archive.Manifest{}, err
	}
	m, err := archive.Restore(ctx, r, conn, org.ID, archive.RestoreOptions{})
	if err != nil {
		// A failed restore's transaction rolled back: lift the fence on
		// a fresh connection (a cancelled COPY closes this one).
		if uerr := p.unfenceOrganization(context.WithoutCancel(ctx), org.ID); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return m, err
	}
	return m, errors.Join(setFence(ctx, conn, org.ID, pl.Epoch, false), p.publish(ctx, org.ID))
}

func (p *Provisioner) unfenceOrganization(ctx context.Context, orgID string) error {
	conn, err := p.tenantConn(ctx, orgID)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return setFence(ctx, conn, orgID, 0, false)
}

// setFence bars (or lets back) an organization's writes in the database
// conn is on, with the fence moves use (move.FenceOrganization); a restore waits up to
// 30 s for the tenant's writes in flight.
func setFence(ctx context.Context, conn *pgx.Conn, orgID string, epoch int64, on bool) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if on {
			return move.FenceOrganization(ctx, tx, orgID, epoch, "", "30s")
		}
		_, err := tx.Exec(ctx, `DELETE FROM tenant_fences WHERE organization_id = $1`, orgID)
		return err
	})
	if err != nil {
		return fmt.Errorf("fence the organization for the restore: %w", err)
	}
	return nil
}

func (p *Provisioner) publish(ctx context.Context, orgID string) error {
	if p.Publish == nil {
		return nil
	}
	return p.Publish(ctx, orgID)
}
