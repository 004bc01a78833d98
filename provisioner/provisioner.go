// Package provisioner creates and migrates the databases that hold tenant
// data and registers them in the catalog: the bootstrap that `tenantgate
// init` runs, the creation of organizations with their placement, the
// provisioning of dedicated databases (from a per-server template), and the
// job worker of `tenantgate provisioner` that runs them durably.
package provisioner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// Config is where databases live and which role reads tenant data.
type Config struct {
	CatalogURL         string
	SharedURL          string
	DedicatedServerURL string
	DedicatedPrefix    string
	AppRole            string
	AppRolePassword    string
}

// Init creates the catalog and shared databases if they do not exist,
// migrates them, creates the application role and registers the shared
// database. It is idempotent, and concurrent runs are serialized by an
// advisory lock in the catalog database.
func Init(ctx context.Context, cfg Config, log *slog.Logger) error {
	catalogName, err := schema.DatabaseName(cfg.CatalogURL)
	if err != nil {
		return err
	}
	if err := schema.CreateDatabase(ctx, cfg.CatalogURL, catalogName); err != nil {
		return err
	}
	return schema.WithLock(ctx, cfg.CatalogURL, "tenantgate.init", func(conn *pgx.Conn) error {
		v, err := schema.Migrate(ctx, cfg.CatalogURL, migrations.Catalog, "catalog", 0)
		if err != nil {
			return fmt.Errorf("init: catalog: %w", err)
		}
		log.Info("catalog migrated", "database", catalogName, "version", v.Version)
		if err := schema.EnsureAppRole(ctx, conn, cfg.AppRole, cfg.AppRolePassword); err != nil {
			return err
		}
		return registerShared(ctx, cfg, conn, log)
	})
}

func registerShared(ctx context.Context, cfg Config, catalogConn *pgx.Conn, log *slog.Logger) error {
	name, err := schema.DatabaseName(cfg.SharedURL)
	if err != nil {
		return err
	}
	v, err := prepareTenantDatabase(ctx, cfg, cfg.SharedURL, name)
	if err != nil {
		return fmt.Errorf("init: shared database: %w", err)
	}
	_, err = catalogConn.Exec(ctx, `
		INSERT INTO databases (name, kind, dsn, schema_version) VALUES ($1, 'shared', $2, $3)
		ON CONFLICT (dsn) DO UPDATE SET schema_version = EXCLUDED.schema_version, dirty = false, updated_at = now()`,
		name, cfg.SharedURL, int64(v.Version))
	if err != nil {
		return fmt.Errorf("init: register shared database: %w", err)
	}
	log.Info("shared database ready", "database", name, "version", v.Version)
	return nil
}

// prepareTenantDatabase creates (if needed), migrates and grants one tenant
// database. Every step is idempotent.
func prepareTenantDatabase(ctx context.Context, cfg Config, dsn, name string) (schema.Version, error) {
	if err := schema.CreateDatabase(ctx, dsn, name); err != nil {
		return schema.Version{}, err
	}
	v, err := schema.Migrate(ctx, dsn, migrations.Tenant, "tenant", 0)
	if err != nil {
		return v, err
	}
	// The shared database may be on a server other than the catalog's,
	// without the application role yet.
	return v, withConn(ctx, dsn, func(conn *pgx.Conn) error {
		if err := schema.EnsureAppRole(ctx, conn, cfg.AppRole, cfg.AppRolePassword); err != nil {
			return err
		}
		return schema.GrantApp(ctx, conn, cfg.AppRole)
	})
}

// DedicatedName is the database name of an organization's dedicated
// database: the prefix and the slug, whose hyphens Postgres names dislike.
func (cfg Config) DedicatedName(slug string) string {
	return cfg.DedicatedPrefix + strings.ReplaceAll(slug, "-", "_")
}

// Provisioner creates organizations and their databases.
type Provisioner struct {
	cfg   Config
	store *catalog.Store
	log   *slog.Logger
	// Publish, when set, tells every gateway replica to re-read an
	// organization (the change feed).
	Publish func(ctx context.Context, orgID string) error
	// noTemplate makes every database from empty (benchmarks compare).
	noTemplate bool
	// templates are the servers' template databases known to be at the
	// newest schema (by DSN), so provisioning does not re-check them.
	templatesMu sync.Mutex
	templates   map[string]schema.Version
}

// New returns a Provisioner writing to store.
func New(cfg Config, store *catalog.Store, log *slog.Logger) *Provisioner {
	return &Provisioner{cfg: cfg, store: store, log: log, templates: map[string]schema.Version{}}
}

// CreateOrganization is what an operator asks for.
type CreateOrganization struct {
	Slug, Name        string
	Plan              tenancy.Plan
	Status            tenancy.Status
	OwnerEmail        string
	OwnerPasswordHash string
}

// CreateOrganization places a new organization and, for a dedicated
// plan, provisions its database before returning.
func (p *Provisioner) CreateOrganization(ctx context.Context, req CreateOrganization) (tenancy.Organization, error) {
	org, db, err := p.register(ctx, req)
	if err != nil || db.State == "ready" {
		return org, err
	}
	return org, p.ProvisionDatabase(ctx, db.ID, func(string) {})
}

// EnqueueOrganization records a new organization and, for a dedicated
// plan, queues the provisioning of its database for the provisioner
// service; job is empty when there is nothing to wait for.
func (p *Provisioner) EnqueueOrganization(ctx context.Context, req CreateOrganization) (org tenancy.Organization, job string, err error) {
	org, db, err := p.register(ctx, req)
	if err != nil || db.State == "ready" {
		return org, "", err
	}
	j, err := p.store.EnqueueJob(ctx, catalog.JobProvision, org.ID, provisionPayload{DatabaseID: db.ID})
	return org, j.ID, err
}

type provisionPayload struct {
	DatabaseID string `json:"databaseId"`
}

// register writes the organization, its placement and, for a dedicated
// plan, its database's record in state "creating" (its tenants are refused
// until the database is ready). Two concurrent creates of one slug make one
// organization and one database: both names are unique in the catalog.
func (p *Provisioner) register(ctx context.Context, req CreateOrganization) (tenancy.Organization, tenancy.Database, error) {
	if err := tenancy.ValidateSlug(req.Slug); err != nil {
		return tenancy.Organization{}, tenancy.Database{}, err
	}
	if _, err := p.store.OrganizationBySlug(ctx, req.Slug); err == nil {
		return tenancy.Organization{}, tenancy.Database{}, tenancy.Errorf(tenancy.CodeConflict, "organization %q already exists", req.Slug)
	} else if tenancy.ErrorCode(err) != tenancy.CodeNotFound {
		return tenancy.Organization{}, tenancy.Database{}, err
	}
	db, err := p.placeFor(ctx, req.Plan, req.Slug)
	if err != nil {
		return tenancy.Organization{}, db, err
	}
	org, err := p.store.CreateOrganization(ctx, catalog.NewOrganization{
		Slug: req.Slug, Name: req.Name, Plan: req.Plan, Status: orStatus(req.Status),
		DatabaseID: db.ID, OwnerEmail: req.OwnerEmail, OwnerPasswordHash: req.OwnerPasswordHash,
	})
	return org, db, err
}

// placeFor returns the database a new organization goes to: the shared
// one, or a dedicated one registered (not yet created) on the server with
// the most room.
func (p *Provisioner) placeFor(ctx context.Context, plan tenancy.Plan, slug string) (tenancy.Database, error) {
	if !plan.Dedicated() {
		return p.store.SharedDatabase(ctx)
	}
	return p.RegisterDedicated(ctx, slug)
}

// RegisterDedicated records the dedicated database of slug in state
// "creating", or returns the record that exists.
func (p *Provisioner) RegisterDedicated(ctx context.Context, slug string) (tenancy.Database, error) {
	serverURL, serverID := p.cfg.DedicatedServerURL, ""
	switch srv, err := p.store.PickServer(ctx); {
	case err == nil:
		serverURL, serverID = srv.DSN, srv.ID
	case tenancy.ErrorCode(err) != tenancy.CodeNotFound:
		return tenancy.Database{}, err
	default:
		if has, herr := p.store.HasServers(ctx); herr != nil || has {
			return tenancy.Database{}, errors.Join(herr, tenancy.Errorf(tenancy.CodeConflict,
				"every registered server is at capacity; add one with `tenantgate servers add`"))
		}
	}
	name := p.cfg.DedicatedName(slug)
	dsn, err := schema.WithDatabase(serverURL, name)
	if err != nil {
		return tenancy.Database{}, err
	}
	return p.store.RegisterDatabase(ctx, tenancy.Database{Name: name, Kind: tenancy.KindDedicated, DSN: dsn,
		State: "creating", ServerID: serverID})
}

func orStatus(s tenancy.Status) tenancy.Status {
	if s == "" {
		return tenancy.StatusActive
	}
	return s
}
