//go:build e2e

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/figures"
)

// TestS5DiskFull is RELIABILITY S5: the data directory is a 48 MiB tmpfs,
// and one client writes tasks with 60 KiB descriptions until the disk is
// full and keeps going. While the disk is full, every failed write must be
// a 503 problem+json answer with code storage_failed and no stack trace,
// none may hang, none may be acknowledged unless it was written, and
// /readyz must say the node is not ready. Then the mount grows, the node
// restarts on the same directory and must open (the test fails if it does
// not), keep every acknowledged write and take new ones.
//
// It needs root (mount); elsewhere it skips.
func TestS5DiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("S5 needs root to mount a size-limited tmpfs; skipped")
	}
	mnt := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("S5 cannot mount a tmpfs here (%v: %s); skipped", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })

	var logs bytes.Buffer
	s := startLogging(t, mnt, &logs, "--mode", "cloud")
	c := signup(t, s, "acme")
	proj := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "Fill"}), http.StatusCreated, "project")["id"].(string)

	desc := strings.Repeat("lorem ipsum dolor sit amet ", 60<<10/27)
	acked := map[string]string{} // task ID → title
	var badAnswers, hangs, refused, tried int
	for i := 0; refused < 50 && i < 5000; i++ {
		tried++
		title := fmt.Sprintf("task %d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r, err := c.try(ctx, "POST", "/api/v1/projects/"+proj+"/tasks", map[string]any{"title": title, "description": desc})
		cancel()
		switch {
		case err != nil:
			hangs++
			t.Logf("write %d: %v", i, err)
		case r.Status == http.StatusCreated:
			acked[r.m(t)["id"].(string)] = title
		default:
			refused++
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") ||
				bytes.Contains(r.Body, []byte("goroutine ")) || bytes.Contains(r.Body, []byte(".go:")) ||
				!bytes.Contains(r.Body, []byte(`"code":"storage_failed"`)) {
				badAnswers++
				t.Errorf("write %d while full: %d %s %s", i, r.Status, r.Header.Get("Content-Type"), r.Body)
			} else if refused == 1 {
				t.Logf("first refusal, after %d acknowledged writes: %d %s", len(acked), r.Status, r.Body)
			}
		}
		if hangs > 3 {
			break
		}
	}
	readyWhileFailed := 0
	if r := c.do("GET", "/readyz", nil); r.Status != http.StatusServiceUnavailable {
		readyWhileFailed++
		t.Errorf("/readyz with the store failed: %d %s", r.Status, r.Body)
	}
	s.Kill()

	// Room again: the node must open on the same directory with every
	// acknowledged write, and take new ones.
	if out, err := exec.Command("mount", "-o", "remount,size=256m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	lost, newWrites := 0, 0
	s2 := startLogging(t, mnt, &logs, "--mode", "cloud")
	c2 := newClient(t, s2.URL)
	m := want(t, c2.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": "password-acme"}), http.StatusOK, "login after restart")
	c2.token = m["access_token"].(string)
	for id, title := range acked {
		r := c2.do("GET", "/api/v1/tasks/"+id, nil)
		if r.Status != http.StatusOK || r.m(t)["title"] != title {
			lost++
			t.Errorf("acknowledged task %s: %d %s", id, r.Status, r.Body)
		}
	}
	for i := range 5 {
		if c2.do("POST", "/api/v1/projects/"+proj+"/tasks", map[string]any{"title": fmt.Sprintf("after %d", i)}).Status == http.StatusCreated {
			newWrites++
		}
	}
	if t.Failed() {
		t.Logf("server logs:\n%s", logs.String())
	}
	figures.Report(t, "S5", 0, []figures.Figure{
		figures.Eq("answers_not_storage_failed_problem", float64(badAnswers), 0),
		figures.Eq("hangs", float64(hangs), 0),
		figures.Eq("ready_while_failed", float64(readyWhileFailed), 0),
		figures.Eq("lost_acked", float64(lost), 0),
		figures.Guard("acked_before_full", float64(len(acked)), 20),
		figures.Guard("refused_while_full", float64(refused), 50),
		figures.Guard("writes_after_room", float64(newWrites), 5),
	})
}
