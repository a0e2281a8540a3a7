//go:build e2e

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/figures"
)

// TestKillNineLoop is RELIABILITY S1: a real `teamflow serve` takes writes
// from 8 clients and is killed with SIGKILL at random moments; after each
// restart the store must open and hold every acknowledged write, nothing
// that was never attempted, and no half of a command. At the end, AU5: every
// task and comment that survived has its activity entry, and every
// activity entry its task or comment (they are written in one batch).
func TestKillNineLoop(t *testing.T) {
	iterations := 20
	if s := os.Getenv("S1_ITERATIONS"); s != "" {
		iterations, _ = strconv.Atoi(s)
	}
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	c := signup(t, s, "crash")
	pid := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "Crash"}), 201, "project")["id"].(string)

	type ackedTask struct{ id, title string }
	var mu sync.Mutex
	attempted := map[string]bool{}
	var acked []ackedTask
	ackedComments := map[string][]string{} // task id → comment bodies
	openFailures, lost, phantom, torn, kills := 0, 0, 0, 0, 0
	var listed map[string]string

	for it := range iterations {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last string
				for n := 0; ctx.Err() == nil; n++ {
					if n%3 == 2 && last != "" {
						body := fmt.Sprintf("c-%d-%d-%d", it, w, n)
						r, err := c.try(ctx, "POST", "/api/v1/tasks/"+last+"/comments", map[string]any{"body": body})
						if err == nil && r.Status == 201 {
							mu.Lock()
							ackedComments[last] = append(ackedComments[last], body)
							mu.Unlock()
						}
						continue
					}
					title := fmt.Sprintf("t-%d-%d-%d", it, w, n)
					mu.Lock()
					attempted[title] = true
					mu.Unlock()
					r, err := c.try(ctx, "POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": title, "tags": []string{fmt.Sprintf("w%d", w)}})
					if err != nil || r.Status != 201 {
						continue
					}
					last = r.m(t)["id"].(string)
					mu.Lock()
					acked = append(acked, ackedTask{id: last, title: title})
					mu.Unlock()
				}
			}()
		}
		// The kill moment is the fault being injected, drawn from the seed.
		<-time.After(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		s.Kill()
		kills++
		cancel()
		wg.Wait()

		s2, err := tryStart(t, dir)
		if err != nil {
			// Report the figures (open_failures among them) before failing.
			openFailures++
			t.Errorf("iteration %d: restart after kill -9: %v", it, err)
			break
		}
		s = s2
		c.base = s.URL
		// Every task in the project list must have its record, and the reverse.
		listed = map[string]string{}
		cursor := ""
		for {
			l := want(t, c.do("GET", "/api/v1/projects/"+pid+"/tasks?limit=200&cursor="+url.QueryEscape(cursor), nil), 200, "list")
			for _, x := range l["items"].([]any) {
				m := x.(map[string]any)
				listed[m["id"].(string)] = m["title"].(string)
			}
			cursor, _ = l["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
		// The list mirrors the records; reading each record back is done for
		// this iteration's writes (earlier ones were checked already, and the
		// list comparison below keeps watching them).
		prefix := fmt.Sprintf("t-%d-", it)
		for id, title := range listed {
			if !attempted[title] {
				phantom++
				t.Errorf("iteration %d: task %q was never attempted", it, title)
			}
			if !strings.HasPrefix(title, prefix) {
				continue
			}
			if r := c.do("GET", "/api/v1/tasks/"+id, nil); r.Status != 200 {
				torn++
				t.Errorf("iteration %d: listed task %s has no record (%d)", it, id, r.Status)
			}
		}
		mu.Lock()
		for _, a := range acked {
			if listed[a.id] != a.title {
				lost++
				t.Errorf("iteration %d: acknowledged task %s %q lost", it, a.id, a.title)
			}
		}
		for task, bodies := range ackedComments {
			if it < iterations-1 && !strings.HasPrefix(bodies[len(bodies)-1], fmt.Sprintf("c-%d-", it)) {
				continue // checked when written; the last iteration checks them all
			}
			l := want(t, c.do("GET", "/api/v1/tasks/"+task+"/comments?limit=200", nil), 200, "comments")
			have := map[string]bool{}
			for _, x := range l["items"].([]any) {
				have[x.(map[string]any)["body"].(string)] = true
			}
			for _, b := range bodies {
				if !have[b] {
					lost++
					t.Errorf("iteration %d: acknowledged comment %q lost", it, b)
				}
			}
		}
		mu.Unlock()
	}
	// AU5: actions and their activity entries, both ways.
	created := map[string]bool{}
	commentEntries := map[string]int{}
	withoutAction, entries := 0, 0
	for cursor := ""; ; {
		l := want(t, c.do("GET", "/api/v1/projects/"+pid+"/activity?limit=200&cursor="+url.QueryEscape(cursor), nil), 200, "activity")
		for _, x := range l["items"].([]any) {
			e := x.(map[string]any)
			entries++
			task, _ := e["task_id"].(string)
			switch e["kind"] {
			case "task.created":
				created[task] = true
				if _, ok := listed[task]; !ok {
					withoutAction++
					t.Errorf("activity says task %s was created; it does not exist", task)
				}
			case "comment.created":
				commentEntries[task]++
			}
		}
		if cursor, _ = l["next_cursor"].(string); cursor == "" {
			break
		}
	}
	withoutAudit, comments := 0, 0
	for id := range listed {
		if !created[id] {
			withoutAudit++
			t.Errorf("task %s exists without its task.created activity entry", id)
		}
		l := want(t, c.do("GET", "/api/v1/tasks/"+id+"/comments?limit=200", nil), 200, "comments")
		n := len(l["items"].([]any))
		comments += n
		if n != commentEntries[id] {
			withoutAudit += max(0, n-commentEntries[id])
			withoutAction += max(0, commentEntries[id]-n)
			t.Errorf("task %s has %d comments and %d comment.created entries", id, n, commentEntries[id])
		}
	}
	figures.Report(t, "AU5", seed, []figures.Figure{
		figures.Eq("actions_without_audit", float64(withoutAudit), 0),
		figures.Eq("audit_without_action", float64(withoutAction), 0),
		figures.Guard("actions_checked", float64(len(listed)+comments), float64(iterations*20)),
		figures.Guard("entries_checked", float64(entries), float64(iterations*20)),
	})
	figures.Report(t, "S1", seed, []figures.Figure{
		figures.Eq("open_failures", float64(openFailures), 0),
		figures.Eq("lost_acked", float64(lost), 0),
		figures.Eq("phantom", float64(phantom), 0),
		figures.Eq("torn_commands", float64(torn), 0),
		figures.Guard("kills", float64(kills), float64(iterations)),
		figures.Guard("acked_ops", float64(len(acked)), float64(iterations*20)),
	})
}

// tryStart is start that reports a failure to open instead of failing.
func tryStart(t *testing.T, dir string) (s *server, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		s = start(t, dir, "--mode", "cloud")
	}()
	<-done
	return s, err
}
