package metering

import (
	"time"
)

// Usage is what an organization consumed. Every field is a count, never
// negative: a Meter's rows hold cumulative totals that only grow.
type Usage struct {
	Requests int64 `json:"requests"`
	// DBTime is the wall time of the tenant's database calls. It is stored
	// in microseconds.
	DBTime        time.Duration `json:"dbTime"`
	RowsRead      int64         `json:"rowsRead"`
	RowsWritten   int64         `json:"rowsWritten"`
	BytesSent     int64         `json:"bytesSent"`
	Events        int64         `json:"events"`
	SocketSeconds int64         `json:"socketSeconds"`
}

// Add adds v to u.
func (u *Usage) Add(v Usage) {
	u.Requests += v.Requests
	u.DBTime += v.DBTime
	u.RowsRead += v.RowsRead
	u.RowsWritten += v.RowsWritten
	u.BytesSent += v.BytesSent
	u.Events += v.Events
	u.SocketSeconds += v.SocketSeconds
}

// IsZero reports whether u holds no usage.
func (u Usage) IsZero() bool { return u == Usage{} }

// OverflowOrganization is the pseudo-organization under which a Meter
// counts the usage of organizations past its per-minute cap, and of
// organization ids that are not UUIDs: counted, never dropped.
const OverflowOrganization = "00000000-0000-0000-0000-000000000000"

// Granularity is the width of the buckets Totals returns.
type Granularity string

// Granularities of Totals. Rows rolled up (older than a day) have hourly
// resolution only.
const (
	Hour Granularity = "hour"
	Day  Granularity = "day"
)

// Point is an organization's usage in one bucket that starts at Start
// (UTC).
type Point struct {
	Start time.Time `json:"start"`
	Usage
}

// Measure is a quantity organizations are ranked by in Top.
type Measure string

// Measures of Top.
const (
	ByRequests      Measure = "requests"
	ByDBTime        Measure = "db_time"
	ByRowsRead      Measure = "rows_read"
	ByRowsWritten   Measure = "rows_written"
	ByBytesSent     Measure = "bytes_sent"
	ByEvents        Measure = "events"
	BySocketSeconds Measure = "socket_seconds"
)

// measureColumns maps each Measure to its column: the only strings that
// go into Top's SQL.
var measureColumns = map[Measure]string{
	ByRequests:      "requests",
	ByDBTime:        "db_time_us",
	ByRowsRead:      "rows_read",
	ByRowsWritten:   "rows_written",
	ByBytesSent:     "bytes_sent",
	ByEvents:        "events",
	BySocketSeconds: "socket_seconds",
}

// OrgUsage is one organization's usage over a period.
type OrgUsage struct {
	OrganizationID string `json:"organizationId"`
	Usage
}

// DefaultRetention is how long usage rows are kept unless usage.retention
// says otherwise.
const DefaultRetention = 90 * 24 * time.Hour

// DefaultRollupAge is the age past which minute rows are rolled up into
// hourly rows.
const DefaultRollupAge = 24 * time.Hour
