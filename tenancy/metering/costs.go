package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Measures Costs ranks by besides those of Top: the latest storage figure,
// and the model tokens charged over the period. Top refuses them.
const (
	ByStorage Measure = "storage"
	ByTokens  Measure = "tokens"
)

// Cost is what an organization cost over a period: its metered usage, its
// latest storage figure and the model tokens charged to it, with where it
// is placed.
type Cost struct {
	OrganizationID string `json:"organizationId"`
	Slug           string `json:"slug"`
	Plan           string `json:"plan"`
	// Kind is the kind of database the organization is placed on
	// (tenancy.KindShared or tenancy.KindDedicated), DatabaseName its name.
	Kind         string `json:"kind"`
	DatabaseName string `json:"databaseName"`
	Usage        Usage  `json:"usage"`
	// Storage is the latest figure, whatever the period; for a tenant of a
	// shared database, an estimate.
	Storage StorageFigure `json:"storage"`
	// Tokens are the model tokens of the task runs charged in the period
	// (usage_charges, the ledger of agent-minutes).
	Tokens int64 `json:"tokens"`
}

// costColumns is what scanCost reads, from the CTEs of costQuery.
const costColumns = `o.id::text, o.slug, o.plan, coalesce(d.kind, ''), coalesce(d.name, ''),
	coalesce(u.requests, 0), coalesce(u.db_time_us, 0), coalesce(u.rows_read, 0), coalesce(u.rows_written, 0),
	coalesce(u.bytes_sent, 0), coalesce(u.events, 0), coalesce(u.socket_seconds, 0),
	coalesce(st.bytes, 0), st.measured_at, coalesce(tok.tokens, 0)`

// costQuery lists organizations with their costs since $1. filter, with
// its own placeholders from $3 on, restricts usage rows, charges and
// organizations alike; tail orders and limits.
func costQuery(filter, orgFilter, tail string) string {
	return `
		WITH used AS (
			SELECT organization_id, ` + sums + `
			FROM (` + fmt.Sprintf(usageRows, 1, 2, filter) + `) x GROUP BY organization_id
		), tok AS (
			SELECT organization_id, sum(tokens)::bigint AS tokens FROM usage_charges
			WHERE charged_at >= $1 ` + filter + ` GROUP BY organization_id
		)
		SELECT ` + costColumns + `
		FROM organizations o
		LEFT JOIN placements p ON p.organization_id = o.id
		LEFT JOIN databases d ON d.id = p.database_id
		LEFT JOIN used u ON u.organization_id = o.id
		LEFT JOIN usage_storage st ON st.organization_id = o.id
		LEFT JOIN tok ON tok.organization_id = o.id
		` + orgFilter + tail
}

// costOrder maps each measure Costs ranks by to its expression: the only
// strings that go into Costs' ORDER BY.
var costOrder = map[Measure]string{
	ByRequests:      "coalesce(u.requests, 0)",
	ByDBTime:        "coalesce(u.db_time_us, 0)",
	ByRowsRead:      "coalesce(u.rows_read, 0)",
	ByRowsWritten:   "coalesce(u.rows_written, 0)",
	ByBytesSent:     "coalesce(u.bytes_sent, 0)",
	ByEvents:        "coalesce(u.events, 0)",
	BySocketSeconds: "coalesce(u.socket_seconds, 0)",
	ByStorage:       "coalesce(st.bytes, 0)",
	ByTokens:        "coalesce(tok.tokens, 0)",
}

// CostMeasures are the measures Costs ranks by, in a stable order (for
// messages).
var CostMeasures = []Measure{ByDBTime, ByRequests, ByStorage, ByTokens, ByRowsRead, ByRowsWritten, ByBytesSent, ByEvents, BySocketSeconds}

// Costs returns the n organizations of the catalog with the most of
// measure by since then (any Measure of Top, ByStorage or ByTokens), most
// first and then by slug, each with all its costs. Organizations without
// usage rank last; usage of deleted organizations is not listed.
func (s *Store) Costs(ctx context.Context, since time.Time, by Measure, n int) ([]Cost, error) {
	order, ok := costOrder[by]
	if !ok {
		return nil, tenancy.Errorf(tenancy.CodeInvalid, "unknown measure %q", by)
	}
	if n <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, costQuery("", "", `ORDER BY `+order+` DESC, o.slug LIMIT $3`), since, farFuture, n)
	if err != nil {
		return nil, fmt.Errorf("metering: costs: %w", err)
	}
	costs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cost, error) { return scanCost(r) })
	if err != nil {
		return nil, fmt.Errorf("metering: costs: %w", err)
	}
	return costs, nil
}

// CostOf returns orgID's costs since then. An organization the catalog
// does not hold is not_found.
func (s *Store) CostOf(ctx context.Context, orgID string, since time.Time) (Cost, error) {
	if err := validOrg(orgID); err != nil {
		return Cost{}, err
	}
	c, err := scanCost(s.pool.QueryRow(ctx,
		costQuery("AND organization_id = $3", "WHERE o.id = $3", ""), since, farFuture, orgID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Cost{}, tenancy.Errorf(tenancy.CodeNotFound, "organization not found")
	}
	if err != nil {
		return Cost{}, fmt.Errorf("metering: cost: %w", err)
	}
	return c, nil
}

func scanCost(r pgx.Row) (Cost, error) {
	var c Cost
	var dbTimeUS int64
	var measured pgtype.Timestamptz
	err := r.Scan(&c.OrganizationID, &c.Slug, &c.Plan, &c.Kind, &c.DatabaseName,
		&c.Usage.Requests, &dbTimeUS, &c.Usage.RowsRead, &c.Usage.RowsWritten, &c.Usage.BytesSent,
		&c.Usage.Events, &c.Usage.SocketSeconds, &c.Storage.Bytes, &measured, &c.Tokens)
	c.Usage.DBTime = time.Duration(dbTimeUS) * time.Microsecond
	if measured.Valid {
		c.Storage.MeasuredAt = measured.Time.UTC()
	}
	return c, err
}

// RecordStorages stores the storage of several organizations (bytes by
// organization id), all measured at at, in one statement: what
// RecordStorage does for each. A figure older than the stored one is
// ignored.
func (s *Store) RecordStorages(ctx context.Context, figures map[string]int64, at time.Time) error {
	if len(figures) == 0 {
		return nil
	}
	ids := make([]pgtype.UUID, 0, len(figures))
	bytes := make([]int64, 0, len(figures))
	seen := make(map[uuid.UUID]bool, len(figures))
	for id, b := range figures {
		u, err := uuid.Parse(id)
		if err != nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "organization id is not a UUID")
		}
		if b < 0 {
			return tenancy.Errorf(tenancy.CodeInvalid, "storage cannot be negative")
		}
		// Two spellings of one id would be one row twice, which the
		// upsert refuses.
		if seen[u] {
			return tenancy.Errorf(tenancy.CodeInvalid, "organization %s is given twice", u)
		}
		seen[u] = true
		ids = append(ids, pgtype.UUID{Bytes: u, Valid: true})
		bytes = append(bytes, b)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO usage_storage AS s (organization_id, bytes, measured_at)
		SELECT r.id, r.bytes, $3 FROM unnest($1::uuid[], $2::bigint[]) AS r (id, bytes)
		ON CONFLICT (organization_id) DO UPDATE SET bytes = excluded.bytes, measured_at = excluded.measured_at
		WHERE s.measured_at <= excluded.measured_at`, ids, bytes, at)
	if err != nil {
		return fmt.Errorf("metering: record storage of %d organizations: %w", len(ids), err)
	}
	return nil
}
