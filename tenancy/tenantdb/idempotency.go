package tenantdb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantgate/tenantgate/tenancy"
)

// IdempotencyTTL is how long a POST's first answer is kept for retries.
const IdempotencyTTL = 24 * time.Hour

// abandonAfter is when a claim whose request never finished is given up.
const abandonAfter = time.Minute

// Recorded is a stored answer to a POST under an Idempotency-Key.
type Recorded struct {
	RequestHash []byte
	Status      int // 0: the first request is still running
	Response    []byte
}

// Idempotency stores the first answer to each keyed POST.
type Idempotency struct{ scope *Scope }

// NewIdempotency returns the idempotency store over scope.
func NewIdempotency(scope *Scope) *Idempotency { return &Idempotency{scope: scope} }

// Claim reserves key for a request with hash. It returns claimed=true when
// this request should run; otherwise the record found (a finished answer
// to replay, or one still running). Records older than IdempotencyTTL are
// replaced.
func (s *Idempotency) Claim(ctx context.Context, t tenancy.Tenant, key string, hash []byte) (claimed bool, rec Recorded, err error) {
	err = s.scope.Write(ctx, t, func(b *pgx.Batch) {
		// Expired records go, and so do claims abandoned mid-request (a
		// crash, or a tier move that fenced the answer out): a request
		// still running after abandonAfter has long met its deadline.
		b.Queue(`DELETE FROM idempotency_keys WHERE organization_id = $1 AND key = $2
			AND (created_at < now() - $3::interval OR (status = 0 AND created_at < now() - $4::interval))`,
			t.Organization.ID, key, IdempotencyTTL, abandonAfter)
		b.Queue(`INSERT INTO idempotency_keys (organization_id, key, request_hash) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, t.Organization.ID, key, hash).Exec(func(tag pgconn.CommandTag) error {
			claimed = tag.RowsAffected() == 1
			return nil
		})
		b.Queue(`SELECT request_hash, status, response FROM idempotency_keys WHERE organization_id = $1 AND key = $2`,
			t.Organization.ID, key).QueryRow(func(row pgx.Row) error {
			return row.Scan(&rec.RequestHash, &rec.Status, &rec.Response)
		})
	})
	return claimed, rec, err
}

// Finish stores the answer to a claimed key.
func (s *Idempotency) Finish(ctx context.Context, t tenancy.Tenant, key string, status int, response []byte) error {
	return s.scope.Read(ctx, t, func(b *pgx.Batch) {
		b.Queue(`UPDATE idempotency_keys SET status = $3, response = $4 WHERE organization_id = $1 AND key = $2`,
			t.Organization.ID, key, status, response)
	})
}

// Release gives a claimed key up, so the request can be retried: its first
// attempt failed in a way worth retrying.
func (s *Idempotency) Release(ctx context.Context, t tenancy.Tenant, key string) error {
	return s.scope.Read(ctx, t, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM idempotency_keys WHERE organization_id = $1 AND key = $2 AND status = 0`, t.Organization.ID, key)
	})
}
