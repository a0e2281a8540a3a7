package engine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/enginetest"
)

// BenchmarkStatusFacts measures what a status update costs before any
// model is involved, on a project of 10,000 tasks with 50,000 activity
// entries written over ten weeks: gathering the facts of the last week
// (4,000 entries), of all ten weeks (every entry), cold (after a restart)
// and warm, and the built-in writer. The facts come from the roll-ups the
// writes keep (statusrollup.go), so what they read does not grow with the
// entries. Targets (docs/BENCHMARKS.md): facts ≤ 50 ms, built-in writer
// ≤ 5 ms.
func BenchmarkStatusFacts(b *testing.B) {
	const tasks, activity, weeks = 10_000, 50_000, 10
	env := enginetest.New(b, engine.Config{Mode: engine.ModeCloud, BaseURL: "http://tf.test"})
	if _, err := env.Service.Bootstrap(ctx); err != nil {
		b.Fatal(err)
	}
	c, err := env.Service.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "Acme", WorkspaceSlug: "acme", Name: "Olive Owner", Email: "olive@acme.test", Password: "correct horse battery"})
	if err != nil {
		b.Fatal(err)
	}
	owner, _ := env.Service.Authenticate(ctx, c.Tokens.AccessToken)
	proj, err := env.Service.CreateProject(ctx, owner, engine.CreateProjectInput{Name: "Platform", Key: "PLT"})
	if err != nil {
		b.Fatal(err)
	}
	// Writers in parallel so the group commit shares fsyncs: the set-up
	// takes seconds, not minutes.
	parallel := func(n int, op func(i int) error) {
		var wg sync.WaitGroup
		var next atomic.Int64
		var first atomic.Value
		for range 16 {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := op(i); err != nil {
						first.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err, _ := first.Load().(error); err != nil {
			b.Fatal(err)
		}
	}
	statuses := []string{"To do", "In progress", "Done"}
	ids := make([]string, tasks)
	parallel(tasks, func(i int) error {
		in := engine.CreateTaskInput{Title: fmt.Sprintf("Task %d", i), Status: statuses[i%3]}
		if i%7 == 0 {
			in.Due = env.Clock.Now().AddDate(0, 0, weeks*7+i%11-5).Format(time.DateOnly)
		}
		t, err := env.Service.CreateTask(ctx, owner, proj.ID, in)
		if err == nil {
			ids[i] = t.ID
		}
		return err
	})
	// Each create wrote one activity entry; status changes write the rest,
	// a week's worth at a time.
	perWeek := (activity - tasks) / weeks
	for w := range weeks {
		env.Clock.Advance(7 * 24 * time.Hour)
		parallel(perWeek, func(i int) error {
			n := w*perWeek + i
			st := statuses[(n/tasks+1+n%tasks)%3]
			_, err := env.Service.UpdateTask(ctx, owner, ids[n%tasks], engine.TaskPatch{Status: &st})
			return err
		})
	}

	var facts *engine.Facts
	gather := func(period time.Duration, cold bool) func(*testing.B) {
		return func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				if cold {
					env.Service.DropCaches()
				}
				if facts, err = env.Service.FactsOfLast(owner, proj.ID, period); err != nil {
					b.Fatal(err)
				}
			}
			// The process's CPU time besides the wall time: on a machine
			// shared with other work, waiting for a core inflates ns/op.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		}
	}
	week, all := 7*24*time.Hour, weeks*7*24*time.Hour
	b.Run("week_cold", gather(week, true))
	b.Run("week_warm", gather(week, false))
	b.Run("ten_weeks_cold", gather(all, true))
	b.Run("ten_weeks_warm", gather(all, false))
	b.Run("builtin_writer", func(b *testing.B) {
		for b.Loop() {
			if engine.WriteBuiltin(facts) == "" {
				b.Fatal("empty update")
			}
		}
	})
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
