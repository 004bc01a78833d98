package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// Config configures an Auditor. The zero value audits against the embedded
// tenant migrations.
type Config struct {
	// ScratchPrefix starts the name of every scratch database the auditor
	// creates (and drops) to compute an expected fingerprint; a random
	// suffix follows. Default "tenantgate_audit_".
	ScratchPrefix string
	// Migrations and Dir are the tenant migration set. Default
	// migrations.Tenant, "tenant".
	Migrations fs.FS
	Dir        string
}

// Auditor audits tenant databases against the schema their migration
// version must have. It computes that schema (Expected) once per server
// and version and keeps it for the life of the process; it is safe for
// concurrent use.
type Auditor struct {
	cfg Config

	mu       sync.Mutex
	expected map[expectedKey]*expectation
}

type expectedKey struct {
	server  string // host:port and host/port parameters of its URL
	version uint
}

// expectation is one expected fingerprint, being computed until done is
// closed.
type expectation struct {
	done chan struct{}
	fp   *Fingerprint
	err  error
}

// New returns an Auditor.
func New(cfg Config) *Auditor {
	if cfg.ScratchPrefix == "" {
		cfg.ScratchPrefix = "tenantgate_audit_"
	}
	if cfg.Migrations == nil {
		cfg.Migrations, cfg.Dir = migrations.Tenant, "tenant"
	}
	return &Auditor{cfg: cfg, expected: map[expectedKey]*expectation{}}
}

// Expected returns the fingerprint a tenant database at version must have
// on the server of serverURL (a postgres:// URL of any database there, as
// a role that may create databases and run migrations: the owner DSN of a
// database the provisioner made will do).
//
// It is computed, never written by hand: a scratch database is created on
// that server, migrated to version by tenancy/schema as every tenant
// database is, granted to appRole as schema.GrantApp grants the shared
// and every dedicated database, fingerprinted and dropped. So a new
// migration needs no change here. Computing on the audited server itself
// means Postgres' own rendering of expressions and definitions, which can
// change between major versions, is the same on both sides.
//
// The result is cached per server and version (appRole's name is
// normalised away), and concurrent callers for the same key wait for one
// computation. A failed computation is not cached.
func (a *Auditor) Expected(ctx context.Context, serverURL, appRole string, version uint) (*Fingerprint, error) {
	if version == 0 {
		return nil, errors.New("audit: no schema version to audit against")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("audit: server %s: %w", schema.Redact(serverURL), err)
	}
	// A URL names its server by host and port, or by host and port
	// parameters (a Unix socket's directory, several hosts…).
	q := u.Query()
	key := expectedKey{server: u.Host + "|" + q.Get("host") + "|" + q.Get("port"), version: version}
	for {
		a.mu.Lock()
		e, ok := a.expected[key]
		if !ok {
			e = &expectation{done: make(chan struct{})}
			a.expected[key] = e
			a.mu.Unlock()
			e.fp, e.err = a.compute(ctx, serverURL, appRole, version)
			if e.err != nil {
				a.mu.Lock()
				delete(a.expected, key)
				a.mu.Unlock()
			}
			close(e.done)
			return e.fp, e.err
		}
		a.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		// A computation that failed only because its caller's context
		// ended is tried again under ours; any other failure is shared.
		builderGaveUp := errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded)
		if e.err == nil || !builderGaveUp || ctx.Err() != nil {
			return e.fp, e.err
		}
	}
}

// compute builds, fingerprints and drops one scratch database.
func (a *Auditor) compute(ctx context.Context, serverURL, appRole string, version uint) (fp *Fingerprint, err error) {
	name := fmt.Sprintf("%sv%d_%s", a.cfg.ScratchPrefix, version, randomHex(6))
	dsn, err := schema.WithDatabase(serverURL, name)
	if err != nil {
		return nil, err
	}
	if err := schema.CreateDatabase(ctx, serverURL, name); err != nil {
		return nil, fmt.Errorf("audit: scratch database: %w", err)
	}
	defer func() {
		// Dropped even when ctx has ended; WITH (FORCE) ends any
		// connection left behind.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := schema.DropDatabase(dctx, serverURL, name); derr != nil && err == nil {
			fp, err = nil, fmt.Errorf("audit: drop scratch database: %w", derr)
		}
	}()
	// MigrateTo steps one migration at a time: nothing is read ahead, so
	// an interrupted computation leaks no goroutine of golang-migrate.
	if _, err := schema.MigrateTo(ctx, dsn, a.cfg.Migrations, a.cfg.Dir, version); err != nil {
		return nil, fmt.Errorf("audit: migrate scratch database to %d: %w", version, err)
	}
	conn, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := schema.GrantApp(ctx, conn, appRole); err != nil {
		return nil, fmt.Errorf("audit: scratch database: %w", err)
	}
	fp, err = Read(ctx, conn, appRole)
	if err != nil {
		return nil, err
	}
	fp.Source.Database = ""
	return fp, nil
}

// Audit fingerprints the database at dsn (its owner DSN, as the catalog
// records it), reads appRole's facts on its server, in one round trip, and
// compares them with the expected fingerprint of version (computed on the
// same server, see Expected). Version 0 audits against the version the
// database's own migration ledger records.
//
// An error means the audit could not be made (unreachable database,
// scratch database refused…), not that the database is unsafe: the caller
// decides what an unauditable database is worth.
func (a *Auditor) Audit(ctx context.Context, dsn, appRole string, version uint) (Report, error) {
	actual, role, err := ReadDSN(ctx, dsn, appRole)
	if err != nil {
		return Report{}, err
	}
	if !role.Exists {
		// Nothing can be granted to it in a scratch database, and nothing
		// in this one is: there is no schema to compare grants with.
		return Report{}, fmt.Errorf("audit: application role %s does not exist on the server of %s", appRole, schema.Redact(dsn))
	}
	if version == 0 {
		if actual.Source.MigrationVersion <= 0 {
			return Report{}, fmt.Errorf("audit: %s records no migration version", actual.Source.Database)
		}
		version = uint(actual.Source.MigrationVersion)
	}
	expected, err := a.Expected(ctx, dsn, appRole, version)
	if err != nil {
		return Report{}, err
	}
	return Compare(expected, actual, role), nil
}

// Target is one database to audit.
type Target struct {
	// Name identifies the database to the caller (catalog name or id).
	Name string
	// DSN is the database's owner DSN.
	DSN string
	// Version is the schema version the catalog records for it (0: what
	// the database records).
	Version uint
}

// Result is the audit of one Target.
type Result struct {
	Target Target
	Report Report
	Err    error
}

// AuditAll audits targets, at most concurrency (default 16) at a time,
// and returns their results in the order of targets. One database's
// failure does not stop the others; a cancelled ctx fails those not yet
// audited.
func (a *Auditor) AuditAll(ctx context.Context, appRole string, targets []Target, concurrency int) []Result {
	if concurrency <= 0 {
		concurrency = 16
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		results[i].Target = t
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i].Err = context.Cause(ctx)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i].Report, results[i].Err = a.Audit(ctx, t.DSN, appRole, t.Version)
		}()
	}
	wg.Wait()
	return results
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
