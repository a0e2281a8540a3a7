//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests build the real binary (with the testclock tag, so a
// test can move its clock) and drive it as separate processes over HTTP.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "teamflow-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "teamflow")
	build := exec.Command("go", "build", "-tags", "testclock,noui,failpoints", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `teamflow serve`.
type server struct {
	t      testing.TB
	cmd    *exec.Cmd
	URL    string
	Data   string
	mu     sync.Mutex
	stdout bytes.Buffer
	exited chan error
}

var baseURLRE = regexp.MustCompile(`serving on (http://[0-9.:]+)`)

// start runs the binary on a free loopback port with data in dir and waits
// (polling /readyz with a deadline) until it serves. Its log goes to the
// test's stderr.
func start(t testing.TB, dir string, args ...string) *server {
	t.Helper()
	return startLogging(t, dir, os.Stderr, args...)
}

// startLogging is start with the server's log (its stderr) written to logs.
func startLogging(t testing.TB, dir string, logs io.Writer, args ...string) *server {
	t.Helper()
	s := &server{t: t, Data: dir, exited: make(chan error, 1)}
	// Rate limits are off unless a test turns them on (a later flag wins):
	// the fault tests send far more than a user's hourly allowance.
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-level", "warn", "--rate-limits", "off"}, args...)
	s.cmd = exec.Command(binary, all...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stdout.WriteString(line + "\n")
			s.mu.Unlock()
			if m := baseURLRE.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
	}()
	go func() { s.exited <- s.cmd.Wait() }()
	select {
	case s.URL = <-urlc:
	case err := <-s.exited:
		t.Fatalf("teamflow exited before serving: %v\n%s", err, s.Stdout())
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("teamflow did not start within 30s:\n%s", s.Stdout())
	}
	eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "server ready")
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stdout is what the server printed so far.
func (s *server) Stdout() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String()
}

// Stop sends SIGTERM and waits for a clean exit.
func (s *server) Stop() error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
		return err
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("no exit 60s after SIGTERM")
	}
}

// Kill is kill -9.
func (s *server) Kill() {
	_ = s.cmd.Process.Kill()
	err := <-s.exited
	s.exited <- err
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("%s: not within %s", what, d)
	}
}

// poll answers whether cond held before the deadline passed.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
	return true
}

// client is a JSON client of one server.
type client struct {
	t     testing.TB
	base  string
	token string
	http  *http.Client
	hdr   map[string]string
}

func newClient(t testing.TB, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, http: &http.Client{Timeout: 60 * time.Second, Jar: jar}, hdr: map[string]string{}}
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *resp) m(t testing.TB) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
	return out
}

func (c *client) do(method, path string, body any, headers ...string) *resp {
	c.t.Helper()
	r, err := c.try(context.Background(), method, path, body, headers...)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c *client) try(ctx context.Context, method, path string, body any, headers ...string) (*resp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &resp{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// want fails unless r has status.
func want(t testing.TB, r *resp, status int, what string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
	if len(r.Body) == 0 || !strings.HasPrefix(strings.TrimSpace(string(r.Body)), "{") {
		return nil
	}
	return r.m(t)
}

// signup creates a workspace on a cloud-mode server and returns a client
// signed in as its Owner.
func signup(t testing.TB, s *server, slug string) *client {
	t.Helper()
	c := newClient(t, s.URL)
	m := want(t, c.do("POST", "/api/v1/signup", map[string]any{
		"workspace_name": strings.ToUpper(slug[:1]) + slug[1:], "workspace_slug": slug, "name": "Owner of " + slug,
		"email": "owner@" + slug + ".test", "password": "password-" + slug,
	}), http.StatusCreated, "signup")
	c.token = m["access_token"].(string)
	return c
}
