package catalog

import (
	"context"
	"time"
)

// NoteScheduleDue records that an organization has a schedule due at at:
// the index keeps the earliest time.
func (s *Store) NoteScheduleDue(ctx context.Context, orgID string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO schedule_due (organization_id, next_due) VALUES ($1, $2)
		ON CONFLICT (organization_id) DO UPDATE SET next_due = least(schedule_due.next_due, EXCLUDED.next_due)`, orgID, at)
	return interpret(err, "schedule index")
}

// ClaimDueOrganization takes an organization with a schedule due, pushing
// its entry lease into the future so other schedulers skip it meanwhile.
// It returns not_found when none is due.
func (s *Store) ClaimDueOrganization(ctx context.Context, lease time.Duration) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `UPDATE schedule_due SET next_due = now() + $1::interval
		WHERE organization_id = (SELECT organization_id FROM schedule_due WHERE next_due <= now()
			ORDER BY next_due FOR UPDATE SKIP LOCKED LIMIT 1)
		RETURNING organization_id::text`, lease).Scan(&id)
	return id, interpret(err, "due schedule")
}

// SetScheduleDue records an organization's next due time after a visit;
// nil removes it from the index (no enabled schedule).
func (s *Store) SetScheduleDue(ctx context.Context, orgID string, next *time.Time) error {
	var err error
	if next == nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM schedule_due WHERE organization_id = $1`, orgID)
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO schedule_due (organization_id, next_due) VALUES ($1, $2)
			ON CONFLICT (organization_id) DO UPDATE SET next_due = EXCLUDED.next_due`, orgID, *next)
	}
	return interpret(err, "schedule index")
}
