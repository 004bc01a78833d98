package fanout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// KindCatalog is the kind of the catalog database in Status.
const KindCatalog = "catalog"

// DatabaseStatus is one database as `tenantgate migrate status` shows it.
type DatabaseStatus struct {
	DatabaseID string `json:"databaseId,omitempty"` // empty for the catalog
	Name       string `json:"name"`
	Kind       string `json:"kind"` // catalog, shared or dedicated
	State      string `json:"state"`
	Version    uint   `json:"version"`
	Dirty      bool   `json:"dirty"`
	Tenants    int    `json:"tenants"`
	// Audit is the isolation audit's last verdict ("" before the first, and
	// for the catalog); Quarantined, that its tenants are refused for it.
	Audit       string `json:"audit,omitempty"`
	Quarantined bool   `json:"quarantined,omitempty"`
	// Last is the newest ledger entry of the database; nil if no fan-out
	// or repair has touched it.
	Last *LedgerEntry `json:"last,omitempty"`
}

// LedgerEntry is what the ledger says of one database in one run.
type LedgerEntry struct {
	RunID    string    `json:"runId"`
	Status   string    `json:"status"` // running, succeeded, failed, interrupted or repaired
	From     uint      `json:"from"`
	To       uint      `json:"to"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"` // when it finished, or started if it has not
}

// Status lists every database — the catalog first, then the shared and
// dedicated tenant databases — with the catalog's record of its version
// and its newest ledger entry. It connects to no tenant database.
func (r *Runner) Status(ctx context.Context) ([]DatabaseStatus, error) {
	name, version, dirty, err := r.store.CatalogVersion(ctx)
	if err != nil {
		return nil, err
	}
	dbs, err := r.store.Databases(ctx)
	if err != nil {
		return nil, err
	}
	last, err := r.store.LastMigrationResults(ctx)
	if err != nil {
		return nil, err
	}
	out := []DatabaseStatus{{Name: name, Kind: KindCatalog, State: "ready", Version: version, Dirty: dirty}}
	for _, d := range dbs {
		s := DatabaseStatus{DatabaseID: d.ID, Name: d.Name, Kind: d.Kind, State: d.State,
			Version: uint(max(d.SchemaVersion, 0)), Dirty: d.Dirty, Tenants: d.Tenants, Audit: d.Audit, Quarantined: d.Quarantined}
		if l, ok := last[d.ID]; ok {
			s.Last = ledgerEntry(l)
		}
		out = append(out, s)
	}
	return out, nil
}

// LastSummary is Last in one line for a table: status, versions, when,
// and the first line of the error; "-" when the ledger has nothing.
func (s DatabaseStatus) LastSummary() string {
	l := s.Last
	if l == nil {
		return "-"
	}
	out := fmt.Sprintf("%s %d→%d %s", l.Status, l.From, l.To, l.At.UTC().Format(time.RFC3339))
	if l.Error != "" {
		first, _, _ := strings.Cut(l.Error, "\n")
		if r := []rune(first); len(r) > 80 {
			first = string(r[:77]) + "..."
		}
		out += ": " + first
	}
	return out
}

func ledgerEntry(l catalog.MigrationResult) *LedgerEntry {
	at := l.StartedAt
	if l.FinishedAt != nil {
		at = *l.FinishedAt
	}
	return &LedgerEntry{RunID: l.RunID, Status: l.Status, From: l.From, To: l.To, Error: l.Error, Attempts: l.Attempts, At: at}
}

// Repair is for a database a failed migration left dirty, once a person
// has fixed it by hand: it forces golang-migrate's version to version (0:
// no migration applied), renews the application role's grants, clears the
// catalog's dirty flag — letting its tenants back in — and records the
// repair in the ledger. database is a name or an id. The next Run takes
// the database on from version.
func (r *Runner) Repair(ctx context.Context, database string, version uint) error {
	d, err := r.findDatabase(ctx, database)
	if err != nil {
		return err
	}
	if version > 0 {
		versions, err := sourceVersions(r.migrations, r.dir)
		if err != nil {
			return err
		}
		if !slices.Contains(versions, version) {
			return tenancy.Errorf(tenancy.CodeInvalid, "version %d is not a migration of the set", version)
		}
	}
	before, err := schema.CurrentVersion(ctx, d.DSN)
	if err != nil {
		return err
	}
	if _, err := schema.Force(ctx, d.DSN, r.migrations, r.dir, version); err != nil {
		return err
	}
	if err := r.grant(ctx, d.DSN); err != nil {
		return err
	}
	runID, err := r.store.RecordRepair(ctx, d.ID, before.Version, version)
	if err != nil {
		return err
	}
	r.log.Info("tenant database repaired", "run", runID, "database", d.Name, "was", before.Version,
		"was_dirty", before.Dirty, "version", version)
	r.publishTenants(ctx, d.ID)
	return nil
}

func (r *Runner) findDatabase(ctx context.Context, nameOrID string) (catalog.DatabaseInfo, error) {
	dbs, err := r.store.Databases(ctx)
	if err != nil {
		return catalog.DatabaseInfo{}, err
	}
	for _, d := range dbs {
		if d.Name == nameOrID || d.ID == nameOrID {
			return d, nil
		}
	}
	return catalog.DatabaseInfo{}, tenancy.Errorf(tenancy.CodeNotFound, "database %q is not in the catalog", nameOrID)
}
