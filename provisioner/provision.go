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
// then marked ready. Every step is idempotent, so a provisioner killed at
// any point resumes here without an orphan or a second database.
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
	step("migrate")
	if !cloned {
		// Created empty, or resumed after a crash: bring it up to date.
		if v, err = schema.Migrate(ctx, db.DSN, migrations.Tenant, "tenant", 0); err != nil {
			return fmt.Errorf("provision %s: %w", db.Name, err)
		}
	}
	step("grant")
	if err := grant(ctx, db.DSN, p.cfg.AppRole); err != nil {
		return err
	}
	step("verify")
	if err := p.verify(ctx, db.DSN); err != nil {
		return err
	}
	if err := p.store.SetDatabaseVersion(ctx, db.ID, v.Version, v.Dirty); err != nil {
		return err
	}
	step("ready")
	if err := p.store.SetDatabaseState(ctx, db.ID, "ready"); err != nil {
		return err
	}
	p.log.Info("dedicated database ready", "database", db.Name, "version", v.Version, "ms", time.Since(start).Milliseconds())
	return p.publishDatabase(ctx, db.ID)
}

// createFromTemplate creates db as a copy of its server's template, which
// is kept at the newest tenant schema, so a new tenant needs no migration
// replay. When the template is busy or cannot be made, it creates an empty
// database instead; the migrate step then brings it up to date.
//
// cloned reports a fresh copy of an up-to-date template (version v): it
// needs no migration. A database that already existed (a resumed job) is
// not trusted to be one.
func (p *Provisioner) createFromTemplate(ctx context.Context, db tenancy.Database) (v schema.Version, cloned bool, err error) {
	if p.noTemplate {
		return v, false, schema.CreateDatabase(ctx, db.DSN, db.Name)
	}
	tmpl := p.cfg.TemplateName()
	err = schema.WithServerLock(ctx, db.DSN, "tenantgate.template", func(conn *pgx.Conn) error {
		if v, err = p.ensureTemplate(ctx, db.DSN, tmpl); err != nil {
			return err
		}
		cloned, err = schema.CreateDatabaseFrom(ctx, conn, db.Name, tmpl)
		return err
	})
	if err != nil {
		// The template may have gone (dropped by hand or by a sweep):
		// the next provisioning checks it again rather than trusting it.
		p.forgetTemplate(db.DSN, tmpl)
		p.log.Warn("template copy failed; creating an empty database", "database", db.Name, "err", err)
		return v, false, schema.CreateDatabase(ctx, db.DSN, db.Name)
	}
	return v, cloned, nil
}

// forgetTemplate drops what this process knows of a server's template.
func (p *Provisioner) forgetTemplate(serverDSN, name string) {
	dsn, err := schema.WithDatabase(serverDSN, name)
	if err != nil {
		return
	}
	p.templatesMu.Lock()
	delete(p.templates, dsn)
	p.templatesMu.Unlock()
}

// ensureTemplate makes the server's template database exist at the newest
// tenant schema, once per process and server: after that it is only read.
// The caller holds the server's template lock, so no copy is being made
// from it while it is migrated.
func (p *Provisioner) ensureTemplate(ctx context.Context, serverDSN, name string) (schema.Version, error) {
	dsn, err := schema.WithDatabase(serverDSN, name)
	if err != nil {
		return schema.Version{}, err
	}
	p.templatesMu.Lock()
	v, ok := p.templates[dsn]
	p.templatesMu.Unlock()
	if ok {
		return v, nil
	}
	if v, err = makeTemplate(ctx, serverDSN, dsn, name); err != nil {
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
	if err := grant(ctx, dsn, p.cfg.AppRole); err != nil {
		return v, err
	}
	p.templatesMu.Lock()
	p.templates[dsn] = v
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
