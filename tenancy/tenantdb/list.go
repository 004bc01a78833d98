package tenantdb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// listSpec is one keyset-paginated list: query selects the columns and
// ends in a WHERE clause whose arguments are args ($1 is the organization);
// rows are ordered by (orderBy, id).
type listSpec[T any] struct {
	query   string
	args    []any
	orderBy string
	scan    func(pgx.Row, *T) error
	key     func(T) (time.Time, string)
}

// list returns one page of spec's rows and the next page's cursor.
func list[T any](ctx context.Context, scope *Scope, t tenancy.Tenant, p tenancy.Page, spec listSpec[T]) ([]T, string, error) {
	after, limit, err := p.Bounds()
	if err != nil {
		return nil, "", err
	}
	n := len(spec.args)
	sql := fmt.Sprintf("%s AND (%s, id) > ($%d, $%d) ORDER BY %s, id LIMIT $%d",
		spec.query, spec.orderBy, n+1, n+2, spec.orderBy, n+3)
	args := append(append([]any{}, spec.args...), after.At, after.ID, limit+1)
	out := make([]T, 0, limit)
	err = scope.Read(ctx, t, func(b *pgx.Batch) {
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var item T
				if err := spec.scan(rows, &item); err != nil {
					return err
				}
				out = append(out, item)
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, "", err
	}
	out, next := tenancy.PageOf(out, limit, spec.key)
	return out, next, nil
}

// one runs a statement that returns a single row into dst, in a read or a
// write unit of work.
func one[T any](ctx context.Context, run func(context.Context, tenancy.Tenant, func(*pgx.Batch)) error,
	t tenancy.Tenant, scan func(pgx.Row, *T) error, sql string, args ...any) (T, error) {
	var out T
	err := run(ctx, t, func(b *pgx.Batch) {
		b.Queue(sql, args...).QueryRow(func(row pgx.Row) error { return scan(row, &out) })
	})
	return out, err
}

// logActivity is a CTE that records one activity row per row of the CTE
// named from, in the same statement as the change: $actor must be bound.
func logActivity(from, action, objectType, actorParam string) string {
	return fmt.Sprintf(`log AS (
		INSERT INTO activity_logs (organization_id, actor_id, action, object_type, object_id)
		SELECT organization_id, %s::uuid, '%s', '%s', id FROM %s)`, actorParam, action, objectType, from)
}
