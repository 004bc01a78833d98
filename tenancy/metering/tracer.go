package metering

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Tracer is a pgx tracer for the tenant databases' pools: each Exec,
// Query, batch and CopyFrom made with a context carrying a tenant
// (tenancy.WithTenant) is recorded on the Meter as database time (its wall
// time, from the call until its result is read) and rows read (SELECT) or
// written (INSERT, UPDATE, DELETE, MERGE, COPY FROM), from its command
// tags. Statements whose context has no tenant are not metered. The
// statement setting app.organization_id counts for time but not for rows.
//
// Install it as the pools' tracer (pgx.ConnConfig.Tracer), beside any
// other with pgx's multitracer.
type Tracer struct {
	meter *Meter
}

var (
	_ pgx.QueryTracer    = (*Tracer)(nil)
	_ pgx.BatchTracer    = (*Tracer)(nil)
	_ pgx.CopyFromTracer = (*Tracer)(nil)
)

// Tracer returns a tracer recording on m.
func (m *Meter) Tracer() *Tracer { return &Tracer{meter: m} }

// settingSQL starts the statement with which tenantdb.Scope sets the
// organization of a unit of work: its one-row result is not tenant data.
const settingSQL = "SELECT set_config("

type spanKey struct{}

// span is one traced call in flight.
type span struct {
	org           string
	start         time.Time
	read, written int64
	// setting marks a query that is the setting statement; write, one
	// that writes inside a WITH (writesThrough).
	setting, write bool
	// req, when the call is part of a request, adds up its database time.
	req *Request
}

// begin starts a span when ctx carries a tenant.
func begin(ctx context.Context) (context.Context, *span) {
	tn, ok := tenancy.TenantFrom(ctx)
	if !ok || tn.Organization.ID == "" {
		return ctx, nil
	}
	sp := &span{org: tn.Organization.ID, start: time.Now()}
	sp.req, _ = ctx.Value(requestKey{}).(*Request)
	return context.WithValue(ctx, spanKey{}, sp), sp
}

func spanOf(ctx context.Context) *span {
	sp, _ := ctx.Value(spanKey{}).(*span)
	return sp
}

// end records the span's usage.
func (t *Tracer) end(sp *span) {
	d := time.Since(sp.start)
	t.meter.Record(sp.org, Usage{DBTime: d, RowsRead: sp.read, RowsWritten: sp.written})
	if sp.req != nil {
		sp.req.dbTime.Add(int64(d))
	}
}

type requestKey struct{}

// Request adds up the database time of one request's tenant calls, for
// the gateway's per-tenant Prometheus series.
type Request struct{ dbTime atomic.Int64 }

// WithRequest returns ctx carrying a new Request.
func WithRequest(ctx context.Context) (context.Context, *Request) {
	r := &Request{}
	return context.WithValue(ctx, requestKey{}, r), r
}

// DBTime is the database time of the request's calls so far.
func (r *Request) DBTime() time.Duration { return time.Duration(r.dbTime.Load()) }

// writesThrough reports a statement that writes inside a WITH and answers
// a SELECT (the stores' style: insert, log the activity, return the row):
// its tag says SELECT, but its rows were written.
func writesThrough(sql string) bool {
	s := strings.TrimSpace(sql)
	if len(s) < 4 || !strings.EqualFold(s[:4], "WITH") {
		return false
	}
	u := strings.ToUpper(s)
	return strings.Contains(u, "INSERT INTO") || strings.Contains(u, "UPDATE ") || strings.Contains(u, "DELETE FROM")
}

// count adds the rows of a statement's command tag to sp; write marks a
// statement whose returned rows are rows it wrote (writesThrough).
func (sp *span) count(tag pgconn.CommandTag, write bool) {
	switch n := tag.RowsAffected(); {
	case tag.Select() && write:
		sp.written += n
	case tag.Select():
		sp.read += n
	case tag.Insert(), tag.Update(), tag.Delete(), strings.HasPrefix(tag.String(), "MERGE "):
		sp.written += n
	}
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	ctx, sp := begin(ctx)
	if sp != nil {
		sp.setting = strings.HasPrefix(data.SQL, settingSQL)
		sp.write = writesThrough(data.SQL)
	}
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if sp := spanOf(ctx); sp != nil {
		if !sp.setting {
			sp.count(data.CommandTag, sp.write)
		}
		t.end(sp)
	}
}

// TraceBatchStart implements pgx.BatchTracer.
func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	ctx, _ = begin(ctx)
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (t *Tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if sp := spanOf(ctx); sp != nil && !strings.HasPrefix(data.SQL, settingSQL) {
		sp.count(data.CommandTag, writesThrough(data.SQL))
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *Tracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	if sp := spanOf(ctx); sp != nil {
		t.end(sp)
	}
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *Tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	ctx, _ = begin(ctx)
	return ctx
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *Tracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	if sp := spanOf(ctx); sp != nil {
		sp.written += data.CommandTag.RowsAffected()
		t.end(sp)
	}
}
