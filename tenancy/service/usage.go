package service

import (
	"context"
	"sort"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// UsageQuery is what GET /api/organization/usage asks: a window and a
// bucket size; zero times default to the last 7 days (by day) or 24 hours
// (by hour), ending now.
type UsageQuery struct {
	From, To    time.Time
	Granularity string // hour or day (default day)
}

// UsageBucket is one hour or day of an organization's metered usage.
type UsageBucket struct {
	Start         time.Time `json:"start"`
	Requests      int64     `json:"requests"`
	DBTimeMs      float64   `json:"dbTimeMs"`
	RowsRead      int64     `json:"rowsRead"`
	RowsWritten   int64     `json:"rowsWritten"`
	BytesSent     int64     `json:"bytesSent"`
	Events        int64     `json:"events"`
	SocketSeconds int64     `json:"socketSeconds"`
	Tokens        int64     `json:"tokens"`
}

// UsageReport is an organization's usage over a window.
type UsageReport struct {
	From        time.Time     `json:"from"`
	To          time.Time     `json:"to"`
	Granularity string        `json:"granularity"`
	Data        []UsageBucket `json:"data"`
	// Storage is the newest measure of the organization's data (an
	// estimate on a shared database), nil before the first.
	Storage *metering.StorageFigure `json:"storage"`
}

// maxUsageBuckets bounds one answer: 31 days by hour, a year by day.
const maxUsageBuckets = 31 * 24

// OrganizationUsage returns the caller's organization's metered usage per
// hour or day: requests, database time, rows, bytes, events, socket time,
// tokens, and storage. Owners and admins only. Figures are as of each
// gateway replica's last flush (seconds old).
func (s *Service) OrganizationUsage(ctx context.Context, c *Call, q UsageQuery) (UsageReport, error) {
	if err := require(c, tenancy.RoleAdmin); err != nil {
		return UsageReport{}, err
	}
	if s.Usage == nil {
		return UsageReport{}, tenancy.Errorf(tenancy.CodeTenantUnavailable, "usage metering is not configured")
	}
	q, err := q.normalize(time.Now().UTC())
	if err != nil {
		return UsageReport{}, err
	}
	org := c.Tenant.Organization.ID
	points, err := s.Usage.Totals(ctx, org, q.From, q.To, metering.Granularity(q.Granularity))
	if err != nil {
		return UsageReport{}, err
	}
	tokens, err := s.Catalog.TokensBy(ctx, org, q.From, q.To, q.Granularity)
	if err != nil {
		return UsageReport{}, err
	}
	r := UsageReport{From: q.From, To: q.To, Granularity: q.Granularity, Data: buckets(points, tokens)}
	if f, err := s.Usage.Storage(ctx, org); err != nil {
		return UsageReport{}, err
	} else if !f.MeasuredAt.IsZero() {
		r.Storage = &f
	}
	return r, nil
}

func (q UsageQuery) normalize(now time.Time) (UsageQuery, error) {
	if q.Granularity == "" {
		q.Granularity = string(metering.Day)
	}
	step := 24 * time.Hour
	switch q.Granularity {
	case string(metering.Day):
	case string(metering.Hour):
		step = time.Hour
	default:
		return q, tenancy.Errorf(tenancy.CodeInvalid, "granularity: must be hour or day")
	}
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-7 * step)
	}
	q.From, q.To = q.From.UTC().Truncate(step), q.To.UTC()
	switch {
	case !q.From.Before(q.To):
		return q, tenancy.Errorf(tenancy.CodeInvalid, "from: must be before to")
	case q.To.Sub(q.From) > maxUsageBuckets*step && step == time.Hour:
		return q, tenancy.Errorf(tenancy.CodeInvalid, "from, to: at most 31 days by hour; use granularity=day")
	case q.To.Sub(q.From) > 366*24*time.Hour:
		return q, tenancy.Errorf(tenancy.CodeInvalid, "from, to: at most 366 days")
	}
	return q, nil
}

// buckets merges metered points and charged tokens, oldest first.
func buckets(points []metering.Point, tokens map[time.Time]int64) []UsageBucket {
	byStart := map[time.Time]*UsageBucket{}
	for _, p := range points {
		u := p.Usage
		byStart[p.Start.UTC()] = &UsageBucket{Start: p.Start.UTC(), Requests: u.Requests, DBTimeMs: float64(u.DBTime.Microseconds()) / 1000,
			RowsRead: u.RowsRead, RowsWritten: u.RowsWritten, BytesSent: u.BytesSent, Events: u.Events, SocketSeconds: u.SocketSeconds}
	}
	for at, n := range tokens {
		b := byStart[at]
		if b == nil {
			b = &UsageBucket{Start: at}
			byStart[at] = b
		}
		b.Tokens = n
	}
	out := make([]UsageBucket, 0, len(byStart))
	for _, b := range byStart {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
