package provisioner

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// ProvisionDatabase brings a registered dedicated database to service:
// created (from the server's template when it can), migrated to the newest
// tenant schema, granted to the application role, verified as that role,
// then marked ready. A fresh copy of the template needs only the grant
// that a copy does not carry (see schema.GrantDatabase), made on the
// connection that created it; it is verified only when it is the first
// copy of that template this process makes. Every step is idempotent, so
// a provisioner killed at any point resumes here without an orphan or a
// second database: a database found already there is migrated, granted
// and verified in full.
func (p *Provisioner) ProvisionDatabase(ctx context.Context, databaseID string, step func(string)) error {
	db, err := p.store.Database(ctx, databaseID)
	if err != nil || db.State == "ready" {
		return err
	}
	start := time.Now()
	step("create")
	v, cloned, err := p.createFromTemplate(ctx, db)
	if err != nil {
		return err
	}
	if !cloned {
		if v, err = p.prepare(ctx, db, step); err != nil {
			return err
		}
	} else if p.firstCopy(db.DSN) {
		step("verify")
		if err := p.verify(ctx, db.DSN); err != nil {
			return err
		}
		p.copyVerified(db.DSN)
	}
	step("ready")
	if err := p.store.SetDatabaseReady(ctx, db.ID, v.Version, v.Dirty); err != nil {
		return err
	}
	p.log.Info("dedicated database ready", "database", db.Name, "version", v.Version, "ms", time.Since(start).Milliseconds())
	return p.publishDatabase(ctx, db.ID)
}

// prepare brings a database that is not a fresh copy of the template (made
// empty, or found there by a resumed job) to the newest schema, grants it
// and verifies it.
func (p *Provisioner) prepare(ctx context.Context, db tenancy.Database, step func(string)) (schema.Version, error) {
	step("migrate")
	v, err := schema.Migrate(ctx, db.DSN, migrations.Tenant, "tenant", 0)
	if err != nil {
		return v, fmt.Errorf("provision %s: %w", db.Name, err)
	}
	step("grant")
	if err := grant(ctx, db.DSN, p.cfg.AppRole); err != nil {
		return v, err
	}
	step("verify")
	return v, p.verify(ctx, db.DSN)
}

// createFromTemplate creates db as a copy of its server's template, which
// is kept at the newest tenant schema, so a new tenant needs no migration
// replay, and grants it to the application role. When the template is
// busy or cannot be made, it creates an empty database instead, which
// prepare then brings up to date.
//
// cloned reports a fresh copy of an up-to-date template (version v): it
// needs no migration. A database that already existed (a resumed job) is
// not trusted to be one.
func (p *Provisioner) createFromTemplate(ctx context.Context, db tenancy.Database) (v schema.Version, cloned bool, err error) {
	if p.noTemplate {
		return v, false, schema.CreateDatabase(ctx, db.DSN, db.Name)
	}
	tmpl := p.cfg.TemplateName()
	known, ok := p.template(db.DSN)
	var grantErr error
	// Copies share the template lock; the first use of a template in this
	// process takes it alone, since it may make or migrate the template.
	err = p.maint.withTemplateLock(ctx, db.DSN, !ok, func(conn *pgx.Conn) error {
		v = known.version
		if !ok {
			if v, err = p.ensureTemplate(ctx, db.DSN, tmpl); err != nil {
				return err
			}
		}
		if cloned, err = schema.CreateDatabaseFrom(ctx, conn, db.Name, tmpl); err != nil || !cloned {
			return err
		}
		grantErr = schema.GrantDatabase(ctx, conn, db.Name, p.cfg.AppRole)
		return nil
	})
	switch {
	case grantErr != nil:
		// The copy is there: the job's retry finds it and prepares it.
		return v, false, grantErr
	case err != nil:
		// The template may have gone (dropped by hand or by a sweep):
		// the next provisioning checks it again rather than trusting it.
		p.forgetTemplate(db.DSN)
		p.log.Warn("template copy failed; creating an empty database", "database", db.Name, "err", err)
		return v, false, schema.CreateDatabase(ctx, db.DSN, db.Name)
	}
	return v, cloned, nil
}

// template is what this process knows of the template of serverDSN's
// server; ok is false until it has made sure of it.
type template struct {
	version schema.Version
	// verified: a copy of it has been read as the application role.
	verified bool
}

func (p *Provisioner) template(serverDSN string) (template, bool) {
	p.templatesMu.Lock()
	defer p.templatesMu.Unlock()
	t, ok := p.templates[schema.ServerOf(serverDSN)]
	return t, ok
}

// firstCopy says whether no copy of serverDSN's template has been verified
// by this process yet.
func (p *Provisioner) firstCopy(serverDSN string) bool {
	t, _ := p.template(serverDSN)
	return !t.verified
}

func (p *Provisioner) copyVerified(serverDSN string) {
	p.templatesMu.Lock()
	defer p.templatesMu.Unlock()
	if t, ok := p.templates[schema.ServerOf(serverDSN)]; ok {
		t.verified = true
		p.templates[schema.ServerOf(serverDSN)] = t
	}
}

// forgetTemplate drops what this process knows of a server's template.
func (p *Provisioner) forgetTemplate(serverDSN string) {
	p.templatesMu.Lock()
	defer p.templatesMu.Unlock()
	delete(p.templates, schema.ServerOf(serverDSN))
}

// ensureTemplate makes the server's template database exist at the newest
// tenant schema, once per process and server: after that it is only read.
// The caller holds the server's template lock alone, so no copy is being
// made from it while it is migrated.
func (p *Provisioner) ensureTemplate(ctx context.Context, serverDSN, name string) (schema.Version, error) {
	if t, ok := p.template(serverDSN); ok {
		return t.version, nil
	}
	dsn, err := schema.WithDatabase(serverDSN, name)
	if err != nil {
		return schema.Version{}, err
	}
	v, err := makeTemplate(ctx, serverDSN, dsn, name)
	if err != nil {
		// A provisioner killed while migrating it leaves the template
		// dirty, and every later copy would fall back to the slow path.
		// It holds no data: make it again from nothing.
		p.log.Warn("template failed to migrate; making it again", "template", name, "err", err)
		if err := schema.DropDatabase(ctx, serverDSN, name); err != nil {
			return v, err
		}
		if v, err = makeTemplate(ctx, serverDSN, dsn, name); err != nil {
			return v, err
		}
	}
	// Roles belong to the server: a server registered or reached for the
	// first time may not have the application role yet.
	if err := withConn(ctx, dsn, func(conn *pgx.Conn) error {
		return schema.EnsureAppRole(ctx, conn, p.cfg.AppRole, p.cfg.AppRolePassword)
	}); err != nil {
		return v, err
	}
	// Its copies carry these grants, all but the database's own.
	if err := grant(ctx, dsn, p.cfg.AppRole); err != nil {
		return v, err
	}
	p.templatesMu.Lock()
	p.templates[schema.ServerOf(serverDSN)] = template{version: v}
	p.templatesMu.Unlock()
	return v, nil
}

// makeTemplate creates the template database if it is missing and
// migrates it to the newest tenant schema.
func makeTemplate(ctx context.Context, serverDSN, dsn, name string) (schema.Version, error) {
	if err := schema.CreateDatabase(ctx, serverDSN, name); err != nil {
		return schema.Version{}, err
	}
	v, err := schema.Migrate(ctx, dsn, migrations.Tenant, "tenant", 0)
	if err != nil {
		return v, fmt.Errorf("template %s: %w", name, err)
	}
	return v, nil
}

func grant(ctx context.Context, dsn, role string) error {
	return withConn(ctx, dsn, func(conn *pgx.Conn) error { return schema.GrantApp(ctx, conn, role) })
}

// withConn runs fn on a connection of its own to dsn.
func withConn(ctx context.Context, dsn string, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", schema.Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// verify reads the new database as the application role, as the gateway
// will: connect, set an organization, query a tenant table.
func (p *Provisioner) verify(ctx context.Context, dsn string) error {
	app, err := schema.WithUser(dsn, p.cfg.AppRole, p.cfg.AppRolePassword)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, app)
	if err != nil {
		return fmt.Errorf("verify %s: %w", schema.Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('app.organization_id', '00000000-0000-0000-0000-000000000000', true)`); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM agents`).Scan(&n); err != nil {
			return fmt.Errorf("verify %s: %w", schema.Redact(dsn), err)
		}
		return nil
	})
}

// publishDatabase tells gateways to re-read the tenants of a database.
func (p *Provisioner) publishDatabase(ctx context.Context, databaseID string) error {
	if p.Publish == nil {
		return nil
	}
	orgs, err := p.store.OrganizationsOn(ctx, databaseID)
	if err != nil {
		return err
	}
	for _, id := range orgs {
		if err := p.Publish(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
