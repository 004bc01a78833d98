package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// JobFollowerName is the application_name of FollowJob's listening
// connections in pg_stat_activity (`--wait`, GET /admin/jobs/{id}?follow).
const JobFollowerName = "tenantgate-job-follower"

// FollowJob follows job id until it ends. It calls each with the job as it
// is at the start, then with every new state of it (a change of state,
// step, attempts or error: a lease renewal is not one), and returns nil
// after each has had the job succeeded or failed. It returns each's error
// as soon as each returns one, ctx's error when ctx ends, and a failed
// read's error (not_found for an unknown job).
//
// It reads the job when the catalog announces a change of it (JobChannel),
// once after its listening connection has (re)connected, and every poll
// (default 5 s) in case an announcement was lost: a change is seen late
// only while the catalog cannot notify. States between two reads are not
// seen (a step that came and went), only the newest. The listening
// connection is its own, outside the pool, for as long as FollowJob runs:
// callers that serve many followers must bound how many run at once.
func (s *Store) FollowJob(ctx context.Context, id string, poll time.Duration, each func(Job) error) error {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	listenCtx, stopListening := context.WithCancel(ctx)
	l := NewListener(func(ctx context.Context) (*pgx.Conn, error) {
		return s.ListenConn(ctx, JobFollowerName)
	}, nil, JobChannel(id))
	listening := make(chan struct{})
	go func() { defer close(listening); l.Run(listenCtx) }()
	// The listener is this call's: it has stopped, its connection closed,
	// before FollowJob returns.
	defer func() { stopListening(); <-listening }()

	t := time.NewTimer(poll)
	defer t.Stop()
	var last Job
	for seen := false; ; seen = true {
		j, err := s.Job(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if !seen || !last.SameState(j) {
			last = j
			if err := each(j); err != nil {
				return err
			}
		}
		if j.Ended() {
			return nil
		}
		t.Reset(poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.Wake():
		case <-t.C:
		}
	}
}

// Ended says whether j has ended: succeeded, or failed for good.
func (j Job) Ended() bool { return j.State == JobSucceeded || j.State == JobFailed }

// SameState says whether j and o show a follower the same thing: the same
// state, step, attempts and error (a lease renewal changes none of them).
func (j Job) SameState(o Job) bool {
	return j.State == o.State && j.Step == o.Step && j.Attempts == o.Attempts && j.Error == o.Error
}
