package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The schedule index (schedule_due) holds, per organization, the earliest
// time it has a schedule due, so the scheduler visits only organizations
// with work. The gateway notes due times as schedules are created or
// changed (NoteScheduleDue keeps the least); a scheduler claims an
// organization (ClaimDueOrganization), fires what is due in the tenant's
// database, and ends the visit with what it read there (SetScheduleDue).
//
// Every note and every claim gives the entry a new generation, taken from
// one sequence so that a value is never seen twice. The end of a visit
// overwrites the entry only at the generation it claimed: a schedule noted
// after the claim may have been committed too late for the visit to read
// it, so then the organization is made due now and the next visit reads
// again, instead of the note being lost.

// DueClaim is an organization taken from the schedule index by one
// scheduler visit.
type DueClaim struct {
	OrganizationID string
	// Generation is the entry's generation as this claim left it.
	Generation int64
}

// NoteScheduleDue records that an organization has a schedule due at at:
// the index keeps the earliest time, and a visit running meanwhile learns
// that it may not have read everything.
func (s *Store) NoteScheduleDue(ctx context.Context, orgID string, at time.Time) error {
	// The insert's default has drawn a fresh generation; a conflict takes it.
	_, err := s.pool.Exec(ctx, `INSERT INTO schedule_due (organization_id, next_due) VALUES ($1, $2)
		ON CONFLICT (organization_id) DO UPDATE
		SET next_due = least(schedule_due.next_due, EXCLUDED.next_due), generation = EXCLUDED.generation`, orgID, at)
	return interpret(err, "schedule index")
}

// ClaimDueOrganization takes the organization whose schedules have been
// due the longest, pushing its entry lease into the future so other
// schedulers skip it meanwhile. It returns not_found when none is due.
func (s *Store) ClaimDueOrganization(ctx context.Context, lease time.Duration) (DueClaim, error) {
	var c DueClaim
	err := s.pool.QueryRow(ctx, `UPDATE schedule_due
		SET next_due = now() + $1::interval, generation = nextval('schedule_due_generation')
		WHERE organization_id = (SELECT organization_id FROM schedule_due WHERE next_due <= now()
			ORDER BY next_due FOR UPDATE SKIP LOCKED LIMIT 1)
		RETURNING organization_id::text, generation`, lease).Scan(&c.OrganizationID, &c.Generation)
	return c, interpret(err, "due schedule")
}

// SetScheduleDue ends a visit of claim's organization with the earliest
// due time the visit read in the tenant's database; nil removes the entry
// (no enabled schedule). A time already past (schedules the visit left for
// later) is recorded as now: the organization is due again at once, but
// behind every organization due before it.
//
// The entry is changed only at the claimed generation. When a due time
// was noted since the claim, or another scheduler claimed the organization
// since, the organization is made due now instead (unless it was deleted),
// so that the next visit reads its schedules again.
func (s *Store) SetScheduleDue(ctx context.Context, claim DueClaim, next *time.Time) error {
	var tag pgconn.CommandTag
	var err error
	if next == nil {
		tag, err = s.pool.Exec(ctx, `DELETE FROM schedule_due WHERE organization_id = $1 AND generation = $2`,
			claim.OrganizationID, claim.Generation)
	} else {
		tag, err = s.pool.Exec(ctx, `UPDATE schedule_due SET next_due = greatest($3::timestamptz, now())
			WHERE organization_id = $1 AND generation = $2`, claim.OrganizationID, claim.Generation, *next)
	}
	if err != nil || tag.RowsAffected() == 1 {
		return interpret(err, "schedule index")
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO schedule_due (organization_id, next_due)
		SELECT id, now() FROM organizations WHERE id = $1
		ON CONFLICT (organization_id) DO UPDATE SET next_due = least(schedule_due.next_due, now())`, claim.OrganizationID)
	return interpret(err, "schedule index")
}
