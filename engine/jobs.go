package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Job is a scheduled piece of work. Runs must be idempotent: after a
// failover the new leader may run a job whose last run it did not see.
type Job struct {
	ID       string
	Schedule cron.Schedule
	Run      func(ctx context.Context) error
}

// Scheduler fires jobs on the injected Clock. robfig/cron parses the
// schedules and gives the next time; the loop itself is driven by RunDue,
// which the server calls on a ticker (only on the raft leader) and tests
// call after advancing their clock.
type Scheduler struct {
	clock Clock
	mu    sync.Mutex
	jobs  []*scheduled
	onErr func(id string, err error)
}

type scheduled struct {
	Job
	next time.Time
}

// NewScheduler builds the engine's scheduler with its jobs.
func (s *Service) NewScheduler(onErr func(id string, err error)) *Scheduler {
	sch := &Scheduler{clock: s.clock, onErr: onErr}
	must := func(id, spec string, run func(ctx context.Context) error) {
		if err := sch.Add(id, spec, run); err != nil {
			panic(err) // the engine's own specs are constants
		}
	}
	must("trash.purge", "17 * * * *", func(ctx context.Context) error {
		_, err := s.PurgeExpired(ctx)
		return err
	})
	must("audit.retention", "29 3 * * *", func(ctx context.Context) error {
		_, err := s.PruneAudit(ctx)
		return err
	})
	must("attachments.cleanup", "*/10 * * * *", func(ctx context.Context) error {
		_, err := s.CleanAbandonedUploads(ctx)
		return err
	})
	must("notifications.due_soon", "7 * * * *", func(ctx context.Context) error {
		_, err := s.NotifyDueSoon(ctx)
		return err
	})
	must("notifications.mail", "*/5 * * * *", func(ctx context.Context) error {
		_, err := s.SendNotificationMail(ctx)
		return err
	})
	must("status.schedule", "*/5 * * * *", func(ctx context.Context) error {
		_, err := s.RunTeamSchedules(ctx)
		return err
	})
	must("status.digest", "3 * * * *", func(ctx context.Context) error {
		_, err := s.SendDigests(ctx)
		return err
	})
	must("workspace.reconcile", "*/5 * * * *", func(ctx context.Context) error {
		_, err := s.ReconcileWorkspaces(ctx)
		return err
	})
	return sch
}

// Add schedules a job by a standard cron spec ("*/10 * * * *").
func (sc *Scheduler) Add(id, spec string, run func(ctx context.Context) error) error {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return fmt.Errorf("engine: schedule %s: %w", id, err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.add(Job{ID: id, Schedule: sched, Run: run})
	return nil
}

func (sc *Scheduler) add(j Job) {
	sc.jobs = append(sc.jobs, &scheduled{Job: j, next: j.Schedule.Next(sc.clock.Now())})
}

// RunDue runs every job whose time has come and schedules its next run. It
// returns the IDs it ran.
func (sc *Scheduler) RunDue(ctx context.Context) []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	now := sc.clock.Now()
	var ran []string
	for _, j := range sc.jobs {
		if now.Before(j.next) {
			continue
		}
		if err := j.Run(ctx); err != nil && sc.onErr != nil {
			sc.onErr(j.ID, err)
		}
		ran = append(ran, j.ID)
		j.next = j.Schedule.Next(now)
	}
	return ran
}
