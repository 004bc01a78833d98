package provisioner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// UsageCollector keeps the metered usage in shape and measures each
// tenant's storage, on the provisioner's clock (hourly). Each Collect:
//   - rolls minute rows older than metering.DefaultRollupAge into hourly
//     rows, and deletes what is older than the retention;
//   - measures storage: a tenant alone on a dedicated database is
//     pg_database_size of it; the tenants of a shared database get an
//     estimate (see estimateShared) — and records the figures.
//
// Several provisioners may collect at once: the rollup adds each minute
// row once however often it runs, and the newest storage figure wins.
type UsageCollector struct {
	store     *catalog.Store
	usage     *metering.Store
	retention time.Duration
	log       *slog.Logger
	// ConnectTimeout bounds each connection to a tenant database. Default
	// 10s.
	ConnectTimeout time.Duration
	// now stamps the storage figures; time.Now unless a test sets it.
	now func() time.Time
}

// NewUsageCollector returns a collector over the catalog store and the
// metering store (of the same catalog database) keeping usage for
// retention (config usage.retention; metering.DefaultRetention if not
// positive).
func NewUsageCollector(store *catalog.Store, usage *metering.Store, retention time.Duration, log *slog.Logger) *UsageCollector {
	if retention <= 0 {
		retention = metering.DefaultRetention
	}
	return &UsageCollector{store: store, usage: usage, retention: retention, log: log, ConnectTimeout: 10 * time.Second, now: time.Now}
}

// Run collects at once and then every interval (an hour, normally) until
// ctx ends. Run it in a goroutine the caller owns and waits for.
func (u *UsageCollector) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := u.Collect(ctx); err != nil && ctx.Err() == nil {
			u.log.Warn("usage collection failed in part; the next one retries", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Collect rolls up and prunes the metered usage and records every placed
// tenant's storage. A database that cannot be measured does not stop the
// others: its error is returned with theirs, joined, once all are done.
func (u *UsageCollector) Collect(ctx context.Context) error {
	var errs []error
	rolled, err := u.usage.Rollup(ctx, metering.DefaultRollupAge)
	if err != nil {
		errs = append(errs, err)
	}
	pruned, err := u.usage.Prune(ctx, u.retention)
	if err != nil {
		errs = append(errs, err)
	}
	figures, err := u.measure(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	if err := u.usage.RecordStorages(ctx, figures, u.now()); err != nil {
		errs = append(errs, err)
	}
	u.log.Info("usage collected", "rolledUp", rolled, "pruned", pruned, "storageFigures", len(figures))
	return errors.Join(errs...)
}

// placedDatabase is a database in service with the organizations placed
// on it.
type placedDatabase struct {
	tenancy.Database
	orgs []string
}

// measure returns the storage of every tenant it could measure, by
// organization id.
func (u *UsageCollector) measure(ctx context.Context) (map[string]int64, error) {
	dbs, err := u.store.Databases(ctx)
	if err != nil {
		return nil, err
	}
	figures := map[string]int64{}
	var errs []error
	// Dedicated databases are sized by name, several per connection: one
	// connection per server (and owner) rather than one per tenant.
	byServer := map[string][]placedDatabase{}
	var servers []string
	for _, d := range dbs {
		if d.State != "ready" {
			continue // being created or dropped
		}
		orgs, err := u.store.OrganizationsOn(ctx, d.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(orgs) == 0 {
			continue // the target of a move, or waiting to be dropped
		}
		pd := placedDatabase{Database: d.Database, orgs: orgs}
		if d.Kind == tenancy.KindDedicated && len(orgs) == 1 {
			key, err := schema.WithDatabase(d.DSN, "")
			if err != nil {
				errs = append(errs, fmt.Errorf("usage: database %s: %w", d.Name, err))
				continue
			}
			if byServer[key] == nil {
				servers = append(servers, key)
			}
			byServer[key] = append(byServer[key], pd)
			continue
		}
		// A shared database, or (which placement never makes) a dedicated
		// one with several tenants: share it out.
		shares, err := u.estimateShared(ctx, pd)
		if err != nil {
			errs = append(errs, fmt.Errorf("usage: storage of the tenants of %s: %w", d.Name, err))
			continue
		}
		for org, b := range shares {
			figures[org] = b
		}
	}
	for _, key := range servers {
		sizes, err := u.databaseSizes(ctx, byServer[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("usage: database sizes on %s: %w", schema.Redact(key), err))
		}
		for org, b := range sizes {
			figures[org] = b
		}
	}
	return figures, errors.Join(errs...)
}

// connect opens a connection to dsn (as its owner).
func (u *UsageCollector) connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", schema.Redact(dsn), err)
	}
	cfg.ConnectTimeout = u.ConnectTimeout
	cfg.RuntimeParams["application_name"] = "tenantgate-usage"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", schema.Redact(dsn), err)
	}
	return conn, nil
}

// databaseSizes returns pg_database_size of each dedicated database of one
// server, by the organization placed on it, from one connection to any of
// them. A database that no longer exists (dropped meanwhile) is left out.
func (u *UsageCollector) databaseSizes(ctx context.Context, dbs []placedDatabase) (map[string]int64, error) {
	var conn *pgx.Conn
	var err error
	for _, d := range dbs {
		if conn, err = u.connect(ctx, d.DSN); err == nil {
			break
		}
		if !isNoDatabase(err) {
			return nil, err // the server, not this database: the others would fail alike
		}
	}
	if conn == nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	names := make([]string, len(dbs))
	orgOf := map[string]string{}
	for i, d := range dbs {
		names[i] = d.Name
		orgOf[d.Name] = d.orgs[0]
	}
	rows, err := conn.Query(ctx, `SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	var name string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &size}, func() error {
		sizes[orgOf[name]] = size
		return nil
	})
	return sizes, err
}

// isNoDatabase reports that a connection failed because its database does
// not exist.
func isNoDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

// countBatch bounds the organizations whose rows one round trip counts.
const countBatch = 500

// estimateShared estimates the storage of each tenant of a shared
// database. It is an estimate: every table that holds tenant rows (one
// with an organization_id column) is shared out among the tenants placed
// on the database in proportion to their rows in it —
//
//	tenant's bytes = Σ over tables  pg_total_relation_size(table) × tenant's rows ÷ rows of all placed tenants
//
// so the figures add up to the tables' size, indexes and TOAST included,
// and a tenant with wide rows (long messages) is under-counted beside one
// with narrow ones, while dead tuples, bloat and rows an organization
// that moved away left behind are shared out like the live rows. The
// catalog and system tables are not counted.
//
// The rows are counted as the database's owner, in one snapshot, one
// tenant at a time with app.organization_id set to it: row-level security
// is forced on tenant tables, so even their owner sees only the tenant
// the setting names (unless it is a superuser), and each count names its
// organization_id too, so a table without a policy is counted right.
func (u *UsageCollector) estimateShared(ctx context.Context, d placedDatabase) (map[string]int64, error) {
	conn, err := u.connect(ctx, d.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var tables []string
	var sizes []int64
	counts := make(map[string][]int64, len(d.orgs))
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT c.relname, pg_total_relation_size(c.oid)
			FROM pg_class c
			WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname <> 'tenant_fences'
			  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped)
			ORDER BY c.relname`)
		if err != nil {
			return fmt.Errorf("list tenant tables: %w", err)
		}
		var name string
		var size int64
		if _, err := pgx.ForEachRow(rows, []any{&name, &size}, func() error {
			tables, sizes = append(tables, name), append(sizes, size)
			return nil
		}); err != nil {
			return fmt.Errorf("list tenant tables: %w", err)
		}
		if len(tables) == 0 {
			return nil
		}
		parts := make([]string, len(tables))
		for i, t := range tables {
			parts[i] = `(SELECT count(*) FROM ` + pgx.Identifier{t}.Sanitize() + ` WHERE organization_id = $1::uuid)`
		}
		countSQL := `SELECT ARRAY[` + strings.Join(parts, ", ") + `]::bigint[]`
		for start := 0; start < len(d.orgs); start += countBatch {
			orgs := d.orgs[start:min(start+countBatch, len(d.orgs))]
			b := &pgx.Batch{}
			for _, org := range orgs {
				b.Queue(`SELECT set_config('app.organization_id', $1, true)`, org)
				b.Queue(countSQL, org).QueryRow(func(r pgx.Row) error {
					var c []int64
					if err := r.Scan(&c); err != nil {
						return fmt.Errorf("count the rows of organization %s: %w", org, err)
					}
					counts[org] = c
					return nil
				})
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return shareOut(sizes, d.orgs, counts), nil
}

// shareOut splits each table's size among the organizations in proportion
// to their rows in it (counts[org][i] rows of table i). Every organization
// gets a figure, zero without rows.
func shareOut(sizes []int64, orgs []string, counts map[string][]int64) map[string]int64 {
	totals := make([]int64, len(sizes))
	for _, org := range orgs {
		for i, n := range counts[org] {
			totals[i] += n
		}
	}
	out := make(map[string]int64, len(orgs))
	for _, org := range orgs {
		var bytes float64
		for i, n := range counts[org] {
			if totals[i] > 0 {
				// In floating point: size × rows may not fit in an int64.
				bytes += float64(sizes[i]) * float64(n) / float64(totals[i])
			}
		}
		out[org] = int64(bytes + 0.5)
	}
	return out
}
