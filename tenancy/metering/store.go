package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Store reads and writes usage in the catalog database (tables
// usage_minutes, usage_hours and usage_storage).
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewStore returns a Store over the catalog's pool. now is the clock of
// Rollup, Prune and the Meters made from the Store; nil means time.Now.
func NewStore(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

// minuteRows are a flush's rows, by column, as unnest takes them.
type minuteRows struct {
	orgs          []pgtype.UUID
	minutes       []time.Time
	requests      []int64
	dbTimeUS      []int64
	rowsRead      []int64
	rowsWritten   []int64
	bytesSent     []int64
	events        []int64
	socketSeconds []int64
}

func (r *minuteRows) add(id [16]byte, minute int64, u Usage) {
	r.orgs = append(r.orgs, pgtype.UUID{Bytes: id, Valid: true})
	r.minutes = append(r.minutes, time.Unix(minute*60, 0).UTC())
	r.requests = append(r.requests, u.Requests)
	r.dbTimeUS = append(r.dbTimeUS, u.DBTime.Microseconds())
	r.rowsRead = append(r.rowsRead, u.RowsRead)
	r.rowsWritten = append(r.rowsWritten, u.RowsWritten)
	r.bytesSent = append(r.bytesSent, u.BytesSent)
	r.events = append(r.events, u.Events)
	r.socketSeconds = append(r.socketSeconds, u.SocketSeconds)
}

// slice returns rows [i, j).
func (r *minuteRows) slice(i, j int) []any {
	return []any{r.orgs[i:j], r.minutes[i:j], r.requests[i:j], r.dbTimeUS[i:j], r.rowsRead[i:j],
		r.rowsWritten[i:j], r.bytesSent[i:j], r.events[i:j], r.socketSeconds[i:j]}
}

// maxRowsPerStatement splits a flush only when it is very large (after a
// long catalog outage): a normal flush holds at most two minutes of
// MaxOrganizations organizations and goes in one statement.
const maxRowsPerStatement = 100_000

// upsertMinutes writes a replica's cumulative totals. Re-flushing a minute
// overwrites the row, and greatest() keeps a row from ever going down,
// whatever the order writes arrive in.
const upsertMinutes = `
INSERT INTO usage_minutes AS u (replica_id, organization_id, minute,
	requests, db_time_us, rows_read, rows_written, bytes_sent, events, socket_seconds)
SELECT $1::uuid, r.* FROM unnest($2::uuid[], $3::timestamptz[], $4::bigint[], $5::bigint[],
	$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) AS r
ON CONFLICT (replica_id, organization_id, minute) DO UPDATE SET
	requests       = greatest(u.requests, excluded.requests),
	db_time_us     = greatest(u.db_time_us, excluded.db_time_us),
	rows_read      = greatest(u.rows_read, excluded.rows_read),
	rows_written   = greatest(u.rows_written, excluded.rows_written),
	bytes_sent     = greatest(u.bytes_sent, excluded.bytes_sent),
	events         = greatest(u.events, excluded.events),
	socket_seconds = greatest(u.socket_seconds, excluded.socket_seconds),
	updated_at     = now()`

// writeMinutes upserts rows for replica in one statement per
// maxRowsPerStatement rows.
func (s *Store) writeMinutes(ctx context.Context, replica uuid.UUID, rows *minuteRows) error {
	rid := pgtype.UUID{Bytes: replica, Valid: true}
	for i := 0; i < len(rows.orgs); i += maxRowsPerStatement {
		j := min(i+maxRowsPerStatement, len(rows.orgs))
		if _, err := s.pool.Exec(ctx, upsertMinutes, append([]any{rid}, rows.slice(i, j)...)...); err != nil {
			return fmt.Errorf("metering: flush %d usage rows: %w", j-i, err)
		}
	}
	return nil
}

// sums are the summed usage columns, in Usage's order.
const sums = `sum(requests)::bigint AS requests, sum(db_time_us)::bigint AS db_time_us,
	sum(rows_read)::bigint AS rows_read, sum(rows_written)::bigint AS rows_written,
	sum(bytes_sent)::bigint AS bytes_sent, sum(events)::bigint AS events,
	sum(socket_seconds)::bigint AS socket_seconds`

// usageRows is every usage row, minute and hourly, with its bucket start
// in column b, whose bucket starts in [$from, $to) — $%d placeholders are
// filled by the caller.
const usageRows = `
	SELECT organization_id, minute AS b, requests, db_time_us, rows_read, rows_written, bytes_sent, events, socket_seconds
	FROM usage_minutes WHERE minute >= $%[1]d AND minute < $%[2]d %[3]s
	UNION ALL
	SELECT organization_id, hour, requests, db_time_us, rows_read, rows_written, bytes_sent, events, socket_seconds
	FROM usage_hours WHERE hour >= $%[1]d AND hour < $%[2]d %[3]s`

// farFuture is the open end of a "since" range.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Totals returns orgID's usage summed over replicas, in buckets of
// granularity g (UTC hours or days) whose rows start in [from, to),
// oldest first. Buckets without usage are absent. The figures are as of
// the replicas' last flushes.
func (s *Store) Totals(ctx context.Context, orgID string, from, to time.Time, g Granularity) ([]Point, error) {
	if g != Hour && g != Day {
		return nil, tenancy.Errorf(tenancy.CodeInvalid, "granularity must be %q or %q", Hour, Day)
	}
	if err := validOrg(orgID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT date_trunc($4::text, b, 'UTC'), `+sums+`
		FROM (`+fmt.Sprintf(usageRows, 2, 3, "AND organization_id = $1")+`) x
		GROUP BY 1 ORDER BY 1`, orgID, from, to, string(g))
	if err != nil {
		return nil, fmt.Errorf("metering: totals: %w", err)
	}
	points, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Point, error) {
		var p Point
		err := scanUsage(r, &p.Usage, &p.Start)
		p.Start = p.Start.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("metering: totals: %w", err)
	}
	return points, nil
}

// Top returns the n organizations with the most of measure by since then,
// most first, each with all its usage over the period. The overflow
// pseudo-organization is left out.
func (s *Store) Top(ctx context.Context, since time.Time, by Measure, n int) ([]OrgUsage, error) {
	col, ok := measureColumns[by]
	if !ok {
		return nil, tenancy.Errorf(tenancy.CodeInvalid, "unknown measure %q", by)
	}
	if n <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT organization_id::text, `+sums+`
		FROM (`+fmt.Sprintf(usageRows, 1, 2, "")+`) x
		WHERE organization_id <> '`+OverflowOrganization+`'
		GROUP BY organization_id ORDER BY sum(`+col+`) DESC, organization_id LIMIT $3`, since, farFuture, n)
	if err != nil {
		return nil, fmt.Errorf("metering: top: %w", err)
	}
	top, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrgUsage, error) {
		var o OrgUsage
		return o, scanUsage(r, &o.Usage, &o.OrganizationID)
	})
	if err != nil {
		return nil, fmt.Errorf("metering: top: %w", err)
	}
	return top, nil
}

// scanUsage scans a row of key, then the sums columns.
func scanUsage(r pgx.Row, u *Usage, key any) error {
	var dbTimeUS int64
	err := r.Scan(key, &u.Requests, &dbTimeUS, &u.RowsRead, &u.RowsWritten, &u.BytesSent, &u.Events, &u.SocketSeconds)
	u.DBTime = time.Duration(dbTimeUS) * time.Microsecond
	return err
}

// minRollupAge is the youngest minute Rollup may touch: older than any
// minute a replica may still re-flush (Config.MaxPendingMinutes, at most
// an hour), with an hour's margin for clock skew. A minute rolled up and
// then flushed again would be counted twice.
const minRollupAge = 2 * maxPendingMinutes * time.Minute

// Rollup moves the minute rows that started before the hour olderThan ago
// into hourly rows, summed over replicas, and returns how many minute rows
// it moved. The delete and the insert are one statement (a data-modifying
// WITH runs to completion with its query), so each minute row is added
// exactly once however often Rollup runs, concurrently or not: a second
// DELETE skips the rows the first one took. olderThan must be at least two
// hours; DefaultRollupAge is a day.
func (s *Store) Rollup(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < minRollupAge {
		return 0, tenancy.Errorf(tenancy.CodeInvalid, "usage is rolled up after %v at the earliest", minRollupAge)
	}
	cutoff := s.now().Add(-olderThan).Truncate(time.Hour)
	var moved int64
	err := s.pool.QueryRow(ctx, `
		WITH moved AS (
			DELETE FROM usage_minutes WHERE minute < $1
			RETURNING organization_id, minute, requests, db_time_us, rows_read, rows_written, bytes_sent, events, socket_seconds
		), rolled AS (
			INSERT INTO usage_hours AS h (organization_id, hour,
				requests, db_time_us, rows_read, rows_written, bytes_sent, events, socket_seconds)
			SELECT organization_id, date_trunc('hour', minute, 'UTC'), `+sums+`
			FROM moved GROUP BY 1, 2
			ON CONFLICT (organization_id, hour) DO UPDATE SET
				requests       = h.requests + excluded.requests,
				db_time_us     = h.db_time_us + excluded.db_time_us,
				rows_read      = h.rows_read + excluded.rows_read,
				rows_written   = h.rows_written + excluded.rows_written,
				bytes_sent     = h.bytes_sent + excluded.bytes_sent,
				events         = h.events + excluded.events,
				socket_seconds = h.socket_seconds + excluded.socket_seconds
		)
		SELECT count(*) FROM moved`, cutoff).Scan(&moved)
	if err != nil {
		return 0, fmt.Errorf("metering: rollup: %w", err)
	}
	return moved, nil
}

// Prune deletes usage rows (minute, hourly and storage figures) older than
// retention, and returns how many it deleted. DefaultRetention is 90 days.
func (s *Store) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	if retention <= 0 {
		return 0, tenancy.Errorf(tenancy.CodeInvalid, "usage retention must be positive")
	}
	cutoff := s.now().Add(-retention)
	var n int64
	err := s.pool.QueryRow(ctx, `
		WITH m AS (DELETE FROM usage_minutes WHERE minute < $1 RETURNING 1),
		     h AS (DELETE FROM usage_hours WHERE hour < $1 RETURNING 1),
		     st AS (DELETE FROM usage_storage WHERE measured_at < $1 RETURNING 1)
		SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM h) + (SELECT count(*) FROM st)`, cutoff).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("metering: prune: %w", err)
	}
	return n, nil
}

// StorageFigure is an organization's storage as last measured.
type StorageFigure struct {
	Bytes int64 `json:"bytes"`
	// MeasuredAt is zero when the organization was never measured.
	MeasuredAt time.Time `json:"measuredAt"`
}

// RecordStorage stores orgID's storage, measured at at. A figure older
// than the stored one is ignored, so measurements may arrive in any order.
func (s *Store) RecordStorage(ctx context.Context, orgID string, bytes int64, at time.Time) error {
	if err := validOrg(orgID); err != nil {
		return err
	}
	if bytes < 0 {
		return tenancy.Errorf(tenancy.CodeInvalid, "storage cannot be negative")
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO usage_storage AS s (organization_id, bytes, measured_at) VALUES ($1, $2, $3)
		ON CONFLICT (organization_id) DO UPDATE SET bytes = excluded.bytes, measured_at = excluded.measured_at
		WHERE s.measured_at <= excluded.measured_at`, orgID, bytes, at)
	if err != nil {
		return fmt.Errorf("metering: record storage: %w", err)
	}
	return nil
}

// Storage returns orgID's latest storage figure; zero when none.
func (s *Store) Storage(ctx context.Context, orgID string) (StorageFigure, error) {
	if err := validOrg(orgID); err != nil {
		return StorageFigure{}, err
	}
	var f StorageFigure
	err := s.pool.QueryRow(ctx, `SELECT bytes, measured_at FROM usage_storage WHERE organization_id = $1`, orgID).
		Scan(&f.Bytes, &f.MeasuredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return StorageFigure{}, nil
	}
	if err != nil {
		return StorageFigure{}, fmt.Errorf("metering: storage: %w", err)
	}
	f.MeasuredAt = f.MeasuredAt.UTC()
	return f, nil
}

// Share is an organization's usage since some time beside that of all the
// organizations placed on the same database: what placement advice is
// made of.
type Share struct {
	OrganizationID string `json:"organizationId"`
	Slug           string `json:"slug"`
	Plan           string `json:"plan"`
	DatabaseID     string `json:"databaseId"`
	DatabaseName   string `json:"databaseName"`
	// Kind is the database's: tenancy.KindShared or tenancy.KindDedicated.
	Kind  string `json:"kind"`
	Usage Usage  `json:"usage"`
	// Storage is the organization's latest storage figure (bytes); for a
	// shared database, an estimate.
	Storage int64 `json:"storage"`
	// DatabaseDBTime and DatabaseStorage sum the organizations placed on
	// the same database.
	DatabaseDBTime  time.Duration `json:"databaseDbTime"`
	DatabaseStorage int64         `json:"databaseStorage"`
}

// DBTimeShare is the organization's fraction of its database's time.
func (s Share) DBTimeShare() float64 { return fraction(int64(s.Usage.DBTime), int64(s.DatabaseDBTime)) }

// StorageShare is the organization's fraction of its database's storage.
func (s Share) StorageShare() float64 { return fraction(s.Storage, s.DatabaseStorage) }

func fraction(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// Shares returns every placed organization's usage since then, and its
// database's totals, ordered by database and then by database time, most
// first. Organizations without usage are included (an idle dedicated
// database is advice too). Usage is attributed to the organization's
// current placement, even if it moved during the period.
func (s *Store) Shares(ctx context.Context, since time.Time) ([]Share, error) {
	rows, err := s.pool.Query(ctx, `
		WITH used AS (
			SELECT organization_id, `+sums+`
			FROM (`+fmt.Sprintf(usageRows, 1, 2, "")+`) x GROUP BY organization_id
		)
		SELECT o.id::text, o.slug, o.plan, d.id::text, d.name, d.kind,
			coalesce(u.requests, 0), coalesce(u.db_time_us, 0), coalesce(u.rows_read, 0),
			coalesce(u.rows_written, 0), coalesce(u.bytes_sent, 0), coalesce(u.events, 0),
			coalesce(u.socket_seconds, 0), coalesce(st.bytes, 0),
			(sum(coalesce(u.db_time_us, 0)) OVER w)::bigint, (sum(coalesce(st.bytes, 0)) OVER w)::bigint
		FROM placements p
		JOIN organizations o ON o.id = p.organization_id
		JOIN databases d ON d.id = p.database_id
		LEFT JOIN used u ON u.organization_id = p.organization_id
		LEFT JOIN usage_storage st ON st.organization_id = p.organization_id
		WINDOW w AS (PARTITION BY d.id)
		ORDER BY d.name, d.id, coalesce(u.db_time_us, 0) DESC, o.slug`, since, farFuture)
	if err != nil {
		return nil, fmt.Errorf("metering: shares: %w", err)
	}
	shares, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Share, error) {
		var sh Share
		var dbTimeUS, dbTotalUS int64
		err := r.Scan(&sh.OrganizationID, &sh.Slug, &sh.Plan, &sh.DatabaseID, &sh.DatabaseName, &sh.Kind,
			&sh.Usage.Requests, &dbTimeUS, &sh.Usage.RowsRead, &sh.Usage.RowsWritten, &sh.Usage.BytesSent,
			&sh.Usage.Events, &sh.Usage.SocketSeconds, &sh.Storage, &dbTotalUS, &sh.DatabaseStorage)
		sh.Usage.DBTime = time.Duration(dbTimeUS) * time.Microsecond
		sh.DatabaseDBTime = time.Duration(dbTotalUS) * time.Microsecond
		return sh, err
	})
	if err != nil {
		return nil, fmt.Errorf("metering: shares: %w", err)
	}
	return shares, nil
}

func validOrg(orgID string) error {
	if _, err := uuid.Parse(orgID); err != nil {
		return tenancy.Errorf(tenancy.CodeInvalid, "organization id is not a UUID")
	}
	return nil
}
