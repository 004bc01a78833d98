package service

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
)

// exportRunning bounds how long an export may hold its organization's
// one-at-a-time slot if its replica dies mid-way.
const exportRunning = 30 * time.Minute

// ExportOrganization writes the caller's organization's archive to w (the
// format of `tenants export`, without users: their data, not anyone's
// secrets). Owners only; one export at a time per organization and
// ExportsPerDay a day (counted across replicas with Redis), else 429. The
// archive is read in one snapshot through the tenant's own pool, as the
// application role.
func (s *Service) ExportOrganization(ctx context.Context, c *Call, w io.Writer) (archive.Manifest, error) {
	if err := require(c, tenancy.RoleOwner); err != nil {
		return archive.Manifest{}, err
	}
	org := c.Tenant.Organization.ID
	running := "export:running:" + org
	if n, reset, err := s.Throttle.Hit(ctx, running, exportRunning); err == nil && n > 1 {
		_ = s.Throttle.Undo(ctx, running)
		return archive.Manifest{}, RateLimited("an export of this organization is already running; retry when it ends", min(reset, time.Minute))
	}
	defer func() { _ = s.Throttle.Reset(context.WithoutCancel(ctx), running) }()
	if n, reset, err := s.Throttle.Hit(ctx, "export:day:"+org, 24*time.Hour); err == nil && n > int64(s.ExportsPerDay) {
		return archive.Manifest{}, RateLimited(fmt.Sprintf("the organization's %d exports a day are used up", s.ExportsPerDay), reset)
	}
	version, err := s.Catalog.SchemaVersion(ctx, c.Tenant.Placement.DatabaseID)
	if err != nil {
		return archive.Manifest{}, err
	}
	var m archive.Manifest
	err = s.Data.Scope.Conn(ctx, c.Tenant, func(conn *pgx.Conn) error {
		m, err = archive.Export(ctx, w, conn, c.Tenant.Organization, archive.ExportOptions{SchemaVersion: version})
		return err
	})
	return m, err
}
