package catalog

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// JobCount is how many jobs of a kind are in a state.
type JobCount struct {
	Kind, State string
	Count       int
}

// JobCounts counts jobs by kind and state, for metrics.
func (s *Store) JobCounts(ctx context.Context) ([]JobCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, state, count(*) FROM jobs GROUP BY kind, state`)
	if err != nil {
		return nil, interpret(err, "jobs")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobCount, error) {
		var c JobCount
		err := r.Scan(&c.Kind, &c.State, &c.Count)
		return c, err
	})
	return out, interpret(err, "jobs")
}

// FanoutProgress is the newest migration fan-out: its databases by ledger
// status and, while it runs, how many below its target it has not reached.
type FanoutProgress struct {
	RunID    string
	Running  bool
	ByStatus map[string]int
	Pending  int
}

// LatestFanout returns the newest fan-out's progress; the zero value when
// none has run.
func (s *Store) LatestFanout(ctx context.Context) (FanoutProgress, error) {
	p := FanoutProgress{ByStatus: map[string]int{}}
	var target int64
	err := s.pool.QueryRow(ctx, `SELECT id::text, status = 'running', target FROM migration_runs
		WHERE kind = 'migrate' ORDER BY started_at DESC LIMIT 1`).Scan(&p.RunID, &p.Running, &target)
	if errors.Is(err, pgx.ErrNoRows) {
		return FanoutProgress{}, nil
	}
	if err != nil {
		return p, interpret(err, "migration run")
	}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM migration_results WHERE run_id = $1 GROUP BY status`, p.RunID)
	if err != nil {
		return p, interpret(err, "migration results")
	}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return p, interpret(err, "migration results")
		}
		p.ByStatus[status] = n
	}
	if err := rows.Err(); err != nil {
		return p, interpret(err, "migration results")
	}
	if p.Running {
		// Pending: below the target and not reached yet. (A run narrowed
		// to one tenant counts the others too, as they are behind.)
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM databases d
			WHERE d.state = 'ready' AND d.schema_version < $2 AND NOT EXISTS (
				SELECT 1 FROM migration_results r WHERE r.run_id = $1 AND r.database_id = d.id)`, p.RunID, target).Scan(&p.Pending)
		if err != nil {
			return p, interpret(err, "databases")
		}
	}
	return p, nil
}
