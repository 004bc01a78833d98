package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// InsertChange appends c to the change feed.
func (s *Store) InsertChange(ctx context.Context, c tenancy.Change) (tenancy.Change, error) {
	var until *time.Time
	if !c.Until.IsZero() {
		until = &c.Until
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO changes (kind, subject, until) VALUES ($1, $2, $3) RETURNING id, created_at`,
		c.Kind, c.Subject, until).Scan(&c.ID, &c.At)
	return c, interpret(err, "change")
}

// RecentChanges returns the changes of the last window, oldest first. Ids
// are assigned before commit, so a poller cannot just ask for ids above the
// last it saw: a slow transaction can commit a smaller one later.
func (s *Store) RecentChanges(ctx context.Context, window time.Duration) ([]tenancy.Change, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, kind, subject, coalesce(until, 'epoch'::timestamptz), created_at FROM changes
		WHERE created_at > now() - $1::interval ORDER BY id`, window)
	if err != nil {
		return nil, interpret(err, "changes")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenancy.Change, error) {
		var c tenancy.Change
		err := r.Scan(&c.ID, &c.Kind, &c.Subject, &c.Until, &c.At)
		if c.Until.Equal(time.Unix(0, 0)) {
			c.Until = time.Time{}
		}
		return c, err
	})
	return out, interpret(err, "changes")
}

// PruneChanges deletes feed entries older than age.
func (s *Store) PruneChanges(ctx context.Context, age time.Duration) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE created_at < now() - $1::interval`, age)
	return interpret(err, "changes")
}
