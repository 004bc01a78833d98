package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// periodStartSQL is the start of the current billing period: the calendar
// month, in UTC whatever the session's time zone.
const periodStartSQL = `(date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')`

// Usage is an organization's consumption in the current billing period.
type Usage struct {
	AgentMinutes int64
	Tokens       int64 // model tokens, input and output
	PeriodStart  time.Time
	PeriodEnd    time.Time
}

// Usage returns the organization's usage this period. A period that has
// ended reads as zero; the stored counter resets at the next charge.
func (s *Store) Usage(ctx context.Context, orgID string) (Usage, error) {
	var u Usage
	err := s.pool.QueryRow(ctx, `
		SELECT CASE WHEN period_start < `+periodStartSQL+` THEN 0 ELSE agent_minutes_used END,
		       CASE WHEN period_start < `+periodStartSQL+` THEN 0 ELSE tokens_used END,
		       greatest(period_start, `+periodStartSQL+`)
		FROM organizations WHERE id = $1`, orgID).Scan(&u.AgentMinutes, &u.Tokens, &u.PeriodStart)
	u.PeriodStart = u.PeriodStart.UTC()
	u.PeriodEnd = u.PeriodStart.AddDate(0, 1, 0)
	return u, interpret(err, "organization")
}

// Charge adds a task run's agent-minutes and model tokens to the
// organization's usage, once: a second charge for the same task (a retried
// or concurrent completion) does nothing.
func (s *Store) Charge(ctx context.Context, orgID, taskID string, minutes int, tokens int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := rollOver(ctx, tx, orgID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO usage_charges (organization_id, task_id, minutes, tokens, period_start)
			VALUES ($1, $2, $3, $4, `+periodStartSQL+`) ON CONFLICT DO NOTHING`, orgID, taskID, minutes, tokens)
		if err != nil || tag.RowsAffected() == 0 {
			return interpret(err, "usage")
		}
		_, err = tx.Exec(ctx, `UPDATE organizations SET agent_minutes_used = agent_minutes_used + $2,
			tokens_used = tokens_used + $3 WHERE id = $1`, orgID, minutes, tokens)
		return interpret(err, "usage")
	})
}

// rollOver starts a new period when the stored one has ended, locking the
// organization's row so concurrent charges see one reset.
func rollOver(ctx context.Context, tx pgx.Tx, orgID string) error {
	_, err := tx.Exec(ctx, `
		UPDATE organizations SET agent_minutes_used = 0, tokens_used = 0, period_start = `+periodStartSQL+`
		WHERE id = $1 AND period_start < `+periodStartSQL, orgID)
	if err != nil {
		return interpret(err, "usage")
	}
	_, err = tx.Exec(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, orgID)
	return interpret(err, "usage")
}

// SetUsage sets an organization's agent-minutes for the current period
// (an operator's correction).
func (s *Store) SetUsage(ctx context.Context, slug string, minutes int64) (tenancy.Organization, error) {
	var id string
	err := s.pool.QueryRow(ctx, `UPDATE organizations SET agent_minutes_used = $2, period_start = `+periodStartSQL+`,
		tokens_used = CASE WHEN period_start < `+periodStartSQL+` THEN 0 ELSE tokens_used END,
		updated_at = now() WHERE slug = $1 RETURNING id::text`, slug, minutes).Scan(&id)
	if err != nil {
		return tenancy.Organization{}, interpret(err, fmt.Sprintf("organization %q", slug))
	}
	return s.Organization(ctx, id)
}

// LimitChanges are an operator's overrides: a nil leaves a limit as it is,
// a zero returns it to the plan's.
type LimitChanges struct {
	MaxAgents, MaxAgentMinutes, RPS *int
	MaxTokens                       *int64
}

// SetLimits overrides an organization's plan limits.
func (s *Store) SetLimits(ctx context.Context, slug string, l LimitChanges) (tenancy.Organization, error) {
	var id string
	err := s.pool.QueryRow(ctx, `UPDATE organizations SET
		max_agents = CASE WHEN $2::int IS NULL THEN max_agents ELSE nullif($2, 0) END,
		max_agent_minutes = CASE WHEN $3::int IS NULL THEN max_agent_minutes ELSE nullif($3, 0) END,
		rps = CASE WHEN $4::int IS NULL THEN rps ELSE nullif($4, 0) END,
		max_tokens = CASE WHEN $5::bigint IS NULL THEN max_tokens ELSE nullif($5, 0) END,
		updated_at = now() WHERE slug = $1 RETURNING id::text`, slug, l.MaxAgents, l.MaxAgentMinutes, l.RPS, l.MaxTokens).Scan(&id)
	if err != nil {
		return tenancy.Organization{}, interpret(err, fmt.Sprintf("organization %q", slug))
	}
	return s.Organization(ctx, id)
}

// TokensBy sums an organization's charged model tokens per hour or day
// ("hour", "day") in [from, to), keyed by the bucket's start (UTC).
func (s *Store) TokensBy(ctx context.Context, orgID string, from, to time.Time, granularity string) (map[time.Time]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT date_trunc($4, charged_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', sum(tokens)::bigint
		FROM usage_charges WHERE organization_id = $1 AND charged_at >= $2 AND charged_at < $3 AND tokens > 0
		GROUP BY 1`, orgID, from, to, granularity)
	if err != nil {
		return nil, interpret(err, "usage")
	}
	defer rows.Close()
	out := map[time.Time]int64{}
	for rows.Next() {
		var at time.Time
		var n int64
		if err := rows.Scan(&at, &n); err != nil {
			return nil, interpret(err, "usage")
		}
		out[at.UTC()] = n
	}
	return out, interpret(rows.Err(), "usage")
}
