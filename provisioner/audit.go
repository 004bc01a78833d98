package provisioner

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/audit"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// Audits runs the isolation audit (tenancy/audit) over the fleet and acts
// on it: each verdict is recorded in the catalog, an unsafe database is
// quarantined (its tenants get 503, as for a dirty one) and every gateway
// is told at once; a later safe verdict releases it.
type Audits struct {
	cfg     Config
	store   *catalog.Store
	log     *slog.Logger
	auditor *audit.Auditor
	// Publish tells every gateway replica to re-read an organization.
	Publish func(ctx context.Context, orgID string) error
	// Concurrency bounds the databases audited at once (default 16).
	Concurrency int

	// queued are databases to audit soon (after a job), taken by Run.
	queued chan string
}

// NewAudits returns the fleet's auditor. Its scratch databases (built to
// compute the expected schema, then dropped) are named after the catalog,
// so they never look like a tenant's to `servers sweep`, and deployments
// sharing a server keep apart.
func NewAudits(cfg Config, store *catalog.Store, log *slog.Logger) *Audits {
	scratch := ""
	if name, err := schema.DatabaseName(cfg.CatalogURL); err == nil {
		scratch = name + "_audit_"
	}
	return &Audits{cfg: cfg, store: store, log: log, auditor: audit.New(audit.Config{ScratchPrefix: scratch}), Concurrency: 16,
		queued: make(chan string, 1024)}
}

// AuditOutcome is one database's verdict as recorded.
type AuditOutcome struct {
	Database    string          `json:"database"`
	Kind        string          `json:"kind"` // shared, dedicated, or template
	Verdict     audit.Verdict   `json:"verdict,omitempty"`
	Findings    []audit.Finding `json:"findings"`
	Quarantined bool            `json:"quarantined"`
	// Error says why the database could not be audited (no verdict).
	Error string `json:"error,omitempty"`
}

// KindTemplate marks a server's template database in an outcome: audited,
// never quarantined (no tenant is served from it).
const KindTemplate = "template"

type auditTarget struct {
	audit.Target
	id, kind string
}

// AuditFleet audits every registered database and each server's template,
// or only the databases named, and acts on the verdicts.
func (a *Audits) AuditFleet(ctx context.Context, only ...string) ([]AuditOutcome, error) {
	targets, err := a.targets(ctx, only)
	if err != nil {
		return nil, err
	}
	if len(only) > 0 && len(targets) == 0 {
		return nil, tenancy.Errorf(tenancy.CodeNotFound, "no database named %q is registered", only[0])
	}
	results := make([]audit.Result, len(targets))
	var plain []audit.Target
	var at, templates []int
	for i, t := range targets {
		if t.kind == KindTemplate {
			templates = append(templates, i)
			continue
		}
		plain, at = append(plain, t.Target), append(at, i)
	}
	for j, r := range a.auditor.AuditAll(ctx, a.cfg.AppRole, plain, a.Concurrency) {
		results[at[j]] = r
	}
	// Templates last: the expected schema is built by then, so the lock
	// they are audited under is not held while it is.
	for _, i := range templates {
		results[i] = a.auditTemplate(ctx, targets[i].Target)
	}
	out := make([]AuditOutcome, len(results))
	for i, r := range results {
		out[i] = a.act(ctx, targets[i], r)
	}
	return out, nil
}

// auditTemplate audits a server's template holding the server's template
// lock alone: while anyone is connected to a template, copies of it fail
// (and provisioning falls back to migrating an empty database).
func (a *Audits) auditTemplate(ctx context.Context, t audit.Target) audit.Result {
	var r audit.Result
	err := schema.WithServerLock(ctx, t.DSN, templateLock, func(*pgx.Conn) error {
		r = a.auditor.AuditAll(ctx, a.cfg.AppRole, []audit.Target{t}, 1)[0]
		return nil
	})
	if err != nil {
		return audit.Result{Target: t, Err: err}
	}
	return r
}

// AuditAfter wraps a job handler so that, when the job succeeds, the
// database its organization is now on is audited (after a provision or a
// move). The audit is queued for Run rather than run in the job: it is
// not the job's to wait on (a new tenant's `--wait` would), and one that
// fails is not the job's failure. A full queue leaves it to the next
// fleet audit.
func (a *Audits) AuditAfter(h Handler) Handler {
	return func(ctx context.Context, job catalog.Job, step func(string)) error {
		if err := h(ctx, job, step); err != nil || job.OrganizationID == nil {
			return err
		}
		if pl, err := a.store.Placement(ctx, *job.OrganizationID); err == nil {
			select {
			case a.queued <- pl.DatabaseID:
			default:
			}
		}
		return nil
	}
}

// AuditDatabase audits one registered database by id (after a provision,
// a migration or a move) and acts on the verdict.
func (a *Audits) AuditDatabase(ctx context.Context, id string) (AuditOutcome, error) {
	d, err := a.store.Database(ctx, id)
	if err != nil {
		return AuditOutcome{}, err
	}
	out, err := a.AuditFleet(ctx, d.Name)
	if err != nil || len(out) == 0 {
		return AuditOutcome{}, err
	}
	return out[0], nil
}

// Run audits the whole fleet every interval, and each database queued by
// AuditAfter as it comes, until ctx ends.
func (a *Audits) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := a.AuditFleet(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("fleet audit failed", "err", err)
		}
		if !a.auditQueued(ctx, t.C) {
			return
		}
	}
}

// auditQueued audits queued databases until the next tick; false when ctx
// ended.
func (a *Audits) auditQueued(ctx context.Context, tick <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return true
		case id := <-a.queued:
			if _, err := a.AuditDatabase(ctx, id); err != nil && ctx.Err() == nil {
				a.log.Warn("auditing a job's database failed; the fleet audit retries it", "database", id, "err", err)
			}
		}
	}
}

func (a *Audits) targets(ctx context.Context, only []string) ([]auditTarget, error) {
	wanted := func(name string) bool { return len(only) == 0 || slices.Contains(only, name) }
	dbs, err := a.store.Databases(ctx)
	if err != nil {
		return nil, err
	}
	var out []auditTarget
	for _, d := range dbs {
		if wanted(d.Name) && d.State == "ready" {
			out = append(out, auditTarget{Target: audit.Target{Name: d.Name, DSN: d.DSN, Version: uint(d.SchemaVersion)}, id: d.ID, kind: d.Kind})
		}
	}
	templates, err := a.templates(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range templates {
		if wanted(t.Name) {
			out = append(out, t)
		}
	}
	return out, nil
}

// templates are the template databases that exist on the servers that
// may hold dedicated databases.
func (a *Audits) templates(ctx context.Context) ([]auditTarget, error) {
	servers := []string{a.cfg.DedicatedServerURL}
	if a.cfg.DedicatedServerURL == "" {
		servers[0] = a.cfg.CatalogURL
	}
	registered, err := a.store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range registered {
		servers = append(servers, s.DSN)
	}
	name := a.cfg.TemplateName()
	var out []auditTarget
	for _, server := range servers {
		found, err := schema.DatabasesLike(ctx, server, name)
		if err != nil {
			a.log.Warn("listing a server's template failed", "server", schema.Redact(server), "err", err)
			continue
		}
		for _, f := range found {
			if f != name {
				continue
			}
			dsn, err := schema.WithDatabase(server, name)
			if err != nil {
				return nil, err
			}
			out = append(out, auditTarget{Target: audit.Target{Name: name + " on " + schema.ServerOf(server), DSN: dsn}, kind: KindTemplate})
		}
	}
	return out, nil
}

// act records one result and, when a database's quarantine changed, tells
// every gateway to re-read its tenants.
func (a *Audits) act(ctx context.Context, t auditTarget, r audit.Result) AuditOutcome {
	out := AuditOutcome{Database: t.Name, Kind: t.kind, Verdict: r.Report.Verdict, Findings: r.Report.Findings}
	if out.Findings == nil {
		out.Findings = []audit.Finding{}
	}
	if r.Err != nil {
		out.Verdict, out.Error = "", r.Err.Error()
		a.log.Warn("database could not be audited", "database", t.Name, "err", r.Err)
		return out
	}
	if t.kind == KindTemplate {
		return out
	}
	messages := make([]string, len(r.Report.Findings))
	for i, f := range r.Report.Findings {
		messages[i] = f.Message
	}
	q, changed, err := a.store.RecordAudit(ctx, t.id, string(r.Report.Verdict), messages, int64(t.Version))
	if err != nil {
		out.Error = "recording the verdict: " + err.Error()
		return out
	}
	out.Quarantined = q
	if changed {
		a.log.Warn("database quarantine changed by the isolation audit", "database", t.Name, "quarantined", q,
			"unsafe", r.Report.Properties())
		a.tellGateways(ctx, t.id)
	}
	return out
}

func (a *Audits) tellGateways(ctx context.Context, databaseID string) {
	if a.Publish == nil {
		return
	}
	orgs, err := a.store.OrganizationsOn(ctx, databaseID)
	if err != nil {
		a.log.Warn("listing a quarantined database's tenants failed; gateways follow within their placement TTL", "err", err)
		return
	}
	for _, org := range orgs {
		if err := a.Publish(ctx, org); err != nil {
			a.log.Warn("telling the gateways failed; they follow within their placement TTL", "organization", org, "err", err)
		}
	}
}

// Accept releases a quarantined database on an operator's word: the
// findings of its last audit are accepted (logged with the reason), and
// only an audit with other findings quarantines it again.
func (a *Audits) Accept(ctx context.Context, name, reason string) error {
	if err := tenancy.CheckText("--reason", reason, true, 1000); err != nil {
		return err
	}
	dbs, err := a.store.Databases(ctx)
	if err != nil {
		return err
	}
	for _, d := range dbs {
		if d.Name == name {
			if err := a.store.AcceptAudit(ctx, d.ID, reason); err != nil {
				return err
			}
			a.log.Warn("isolation audit findings accepted by an operator", "database", name, "reason", reason)
			a.tellGateways(ctx, d.ID)
			return nil
		}
	}
	return tenancy.Errorf(tenancy.CodeNotFound, "no database named %q is registered", name)
}
