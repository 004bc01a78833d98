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
	"slices"
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
// No slug may name a database tenantgate uses for itself (OwnDatabases):
// such a name gets underscores appended until it is free, and a slug,
// which never ends with a hyphen, cannot produce the result.
func (cfg Config) DedicatedName(slug string) string {
	return cfg.dedicatedName(slug, nil)
}

// dedicatedName is DedicatedName avoiding also the names in taken.
func (cfg Config) dedicatedName(slug string, taken []string) string {
	name := cfg.DedicatedPrefix + strings.ReplaceAll(slug, "-", "_")
	own := append(cfg.OwnDatabases(), taken...)
	for slices.Contains(own, name) {
		name += "_"
	}
	return name
}

// TemplateName is the name, on every server that holds dedicated
// databases, of the template they are copied from: the prefix and
// "_template". A slug never starts with a hyphen, so no dedicated
// database's name can be it.
//
// Before, the template was the prefix and "template", which is also what
// the slug "template" produces: that tenant's database was the template,
// and its rows were copied into every later tenant's. A database left
// under that old name is not used as the template any more; when the
// catalog does not know it, `servers sweep` reports it.
func (cfg Config) TemplateName() string { return cfg.DedicatedPrefix + "_template" }

// OwnDatabases are the names of the databases tenantgate uses for itself,
// as opposed to tenants' dedicated ones: the catalog, the shared database
// and the template. No organization's database takes one of these names,
// and a sweep for orphans must keep them (the catalog, for one, has no
// record of itself).
func (cfg Config) OwnDatabases() []string {
	own := []string{cfg.TemplateName()}
	for _, dsn := range []string{cfg.CatalogURL, cfg.SharedURL} {
		if name, err := schema.DatabaseName(dsn); err == nil {
			own = append(own, name)
		}
	}
	return own
}

// Provisioner creates organizations and their databases.
type Provisioner struct {
	cfg   Config
	store *catalog.Store
	log   *slog.Logger
	// Publish, when set, tells every gateway replica to re-read an
	// organization (the change feed).
	Publish func(ctx context.Context, orgID string) error
	// ChangePlan changes an organization's plan once a move job has put
	// its data where the plan wants it: the application layer's one plan
	// change (it sets the plan when the placement matches, else queues a
	// move, and tells every replica). Move jobs that carry a plan fail
	// without it.
	ChangePlan func(ctx context.Context, orgID string, plan tenancy.Plan) error
	// Metrics times moves; nil times nothing.
	Metrics *Metrics
	// noTemplate makes every database from empty (benchmarks compare).
	noTemplate bool
	// templates are the servers' template databases known to be at the
	// newest schema (by server), so provisioning does not re-check them.
	templatesMu sync.Mutex
	templates   map[string]template
	// maint holds the connections that create databases.
	maint maintenance
}

// New returns a Provisioner writing to store. Close it when done.
func New(cfg Config, store *catalog.Store, log *slog.Logger) *Provisioner {
	return &Provisioner{cfg: cfg, store: store, log: log, templates: map[string]template{}}
}

// Close closes the connections the Provisioner keeps to create databases;
// later provisionings fail.
func (p *Provisioner) Close() { p.maint.close() }

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
	n, db, err := p.register(ctx, req)
	if err != nil {
		return tenancy.Organization{}, err
	}
	org, err := p.store.CreateOrganization(ctx, n)
	if err != nil || db.State == "ready" {
		return org, err
	}
	return org, p.ProvisionDatabase(ctx, db.ID, func(string) {})
}

// EnqueueOrganization records a new organization and, for a dedicated
// plan, queues the provisioning of its database for the provisioner
// service, in the same transaction; job is empty when there is nothing to
// wait for.
func (p *Provisioner) EnqueueOrganization(ctx context.Context, req CreateOrganization) (org tenancy.Organization, job string, err error) {
	n, db, err := p.register(ctx, req)
	if err != nil {
		return org, "", err
	}
	if db.State == "ready" {
		org, err = p.store.CreateOrganization(ctx, n)
		return org, "", err
	}
	org, j, err := p.store.CreateOrganizationWithJob(ctx, n, catalog.NewJob{Kind: catalog.JobProvision,
		Payload: provisionPayload{DatabaseID: db.ID}})
	return org, j.ID, err
}

type provisionPayload struct {
	DatabaseID string `json:"databaseId"`
}

// register checks a new organization and, for a dedicated plan, records
// its database in state "creating" (its tenants are refused until the
// database is ready); the caller writes the organization and its
// placement. Two concurrent creates of one slug make one organization and
// one database: both names are unique in the catalog.
func (p *Provisioner) register(ctx context.Context, req CreateOrganization) (catalog.NewOrganization, tenancy.Database, error) {
	if err := tenancy.ValidateSlug(req.Slug); err != nil {
		return catalog.NewOrganization{}, tenancy.Database{}, err
	}
	if _, err := p.store.OrganizationBySlug(ctx, req.Slug); err == nil {
		return catalog.NewOrganization{}, tenancy.Database{}, tenancy.Errorf(tenancy.CodeConflict, "organization %q already exists", req.Slug)
	} else if tenancy.ErrorCode(err) != tenancy.CodeNotFound {
		return catalog.NewOrganization{}, tenancy.Database{}, err
	}
	db, err := p.placeFor(ctx, req.Plan, req.Slug)
	if err != nil {
		return catalog.NewOrganization{}, db, err
	}
	return catalog.NewOrganization{
		Slug: req.Slug, Name: req.Name, Plan: req.Plan, Status: orStatus(req.Status),
		DatabaseID: db.ID, OwnerEmail: req.OwnerEmail, OwnerPasswordHash: req.OwnerPasswordHash,
	}, db, nil
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
	// Shared databases registered beside the configured one are the
	// product's too.
	shared, err := p.store.SharedDatabases(ctx)
	if err != nil {
		return tenancy.Database{}, err
	}
	var taken []string
	for _, d := range shared {
		taken = append(taken, d.Name)
	}
	name := p.cfg.dedicatedName(slug, taken)
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
