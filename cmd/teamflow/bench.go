package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// benchCmd drives a running server over HTTP, like real clients: it signs
// up a workspace (cloud mode) or signs in, fills a project with tasks while
// measuring creates, then measures list pages and updates.
func benchCmd() *cobra.Command {
	var o benchOpts
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a running server: task create, list and update throughput and latency",
		Long: "Start a server first, for example:\n" +
			"  teamflow serve --mode=cloud --data /tmp/tf-bench --addr 127.0.0.1:8090\n" +
			"  teamflow bench --server http://127.0.0.1:8090 --tasks 100000 --clients 32",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "http://127.0.0.1:8080", "server URL")
	f.IntVar(&o.clients, "clients", 32, "concurrent clients")
	f.IntVar(&o.listClients, "list-clients", 0, "concurrent clients of the list phase (default: --clients)")
	f.IntVar(&o.tasks, "tasks", 100_000, "tasks to create (the create phase) before the read and update phases")
	f.DurationVar(&o.duration, "duration", 20*time.Second, "length of the list and update phases")
	f.Float64Var(&o.rate, "rate", 0, "offer this many requests a second in every phase, whatever the answers' speed (open loop; latency counts from each request's scheduled start); 0: each client sends its next request when the last is answered")
	f.StringVar(&o.workspace, "workspace", "", "sign in to this workspace slug instead of signing up a new one")
	f.StringVar(&o.email, "email", "", "email for --workspace")
	f.StringVar(&o.password, "password", "", "password for --workspace")
	f.BoolVar(&o.jsonOut, "json", false, "print the results as JSON")
	return cmd
}

type benchOpts struct {
	server, workspace, email, password string
	clients, listClients, tasks        int
	duration                           time.Duration
	rate                               float64
	jsonOut                            bool
}

type benchResult struct {
	Phase      string  `json:"phase"`
	Ops        int     `json:"ops"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"ops_per_second"`
	P50ms      float64 `json:"p50_ms"`
	P95ms      float64 `json:"p95_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
}

type benchClient struct {
	base  string
	token string
	http  *http.Client
}

func (c *benchClient) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func runBench(ctx context.Context, o benchOpts, out io.Writer) error {
	tr := &http.Transport{MaxIdleConns: o.clients * 2, MaxIdleConnsPerHost: o.clients * 2, IdleConnTimeout: time.Minute}
	c := &benchClient{base: strings.TrimRight(o.server, "/"), http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	if o.workspace == "" {
		slug := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1_000_000_000)
		if _, err := c.call(ctx, http.MethodPost, "/api/v1/signup", map[string]string{
			"workspace_name": "Bench", "workspace_slug": slug, "name": "Bench Owner",
			"email": "bench@" + slug + ".test", "password": "bench-password-1",
		}, &tokens); err != nil {
			return fmt.Errorf("sign up (is the server in --mode=cloud?): %w", err)
		}
	} else if _, err := c.call(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{
		"workspace": o.workspace, "email": o.email, "password": o.password,
	}, &tokens); err != nil {
		return err
	}
	c.token = tokens.AccessToken
	var proj struct {
		ID string `json:"id"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/api/v1/projects", map[string]string{"name": fmt.Sprintf("Bench %d", time.Now().Unix()%100000)}, &proj); err != nil {
		return err
	}

	var ids []string
	var idsMu sync.Mutex
	var created atomic.Int64
	create := runPhase(ctx, "task create", o.clients, 0, o.rate, func(ctx context.Context, w int) (bool, error) {
		n := created.Add(1)
		if n > int64(o.tasks) {
			return false, nil
		}
		var t struct {
			ID string `json:"id"`
		}
		_, err := c.call(ctx, http.MethodPost, "/api/v1/projects/"+proj.ID+"/tasks", map[string]any{
			"title": fmt.Sprintf("Task %d from client %d", n, w), "priority": []string{"low", "medium", "high"}[n%3],
			"tags": []string{fmt.Sprintf("t%d", n%20)},
		}, &t)
		if err == nil {
			idsMu.Lock()
			ids = append(ids, t.ID)
			idsMu.Unlock()
		}
		return true, err
	})
	if len(ids) == 0 {
		return fmt.Errorf("no task was created")
	}
	sorts := []string{"", "-created", "priority", "updated"}
	if o.listClients == 0 {
		o.listClients = o.clients
	}
	list := runPhase(ctx, fmt.Sprintf("task list (50), %d cl.", o.listClients), o.listClients, o.duration, o.rate, func(ctx context.Context, w int) (bool, error) {
		path := "/api/v1/projects/" + proj.ID + "/tasks?limit=50"
		if s := sorts[rand.IntN(len(sorts))]; s != "" {
			path += "&sort=" + s
		}
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		_, err := c.call(ctx, http.MethodGet, path, nil, &page)
		if err == nil && len(page.Items) != min(50, len(ids)) {
			err = fmt.Errorf("page of %d items", len(page.Items))
		}
		return true, err
	})
	var updated atomic.Int64
	update := runPhase(ctx, "task update", o.clients, o.duration, o.rate, func(ctx context.Context, w int) (bool, error) {
		id := ids[rand.IntN(len(ids))]
		n := updated.Add(1)
		_, err := c.call(ctx, http.MethodPatch, "/api/v1/tasks/"+id, map[string]any{
			"title": fmt.Sprintf("Updated %d", n), "priority": []string{"low", "medium", "high", "urgent"}[n%4],
		}, nil)
		if err != nil && strings.Contains(err.Error(), ": 409 ") {
			// Two clients edited the same task at once and the retries ran out: a valid answer.
			return true, nil
		}
		return true, err
	})
	results := []benchResult{create, list, update}
	if o.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(out, "workspace of %d tasks, %d clients", len(ids), o.clients)
	if o.rate > 0 {
		fmt.Fprintf(out, ", %.0f requests/s offered", o.rate)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%-24s %8s %7s %10s %8s %8s %8s %8s\n", "phase", "ops", "errors", "ops/s", "p50 ms", "p95 ms", "p99 ms", "max ms")
	for _, r := range results {
		fmt.Fprintf(out, "%-24s %8d %7d %10.0f %8.2f %8.2f %8.2f %8.2f\n", r.Phase, r.Ops, r.Errors, r.Throughput, r.P50ms, r.P95ms, r.P99ms, r.MaxMs)
	}
	return nil
}

// runPhase runs op on clients goroutines until it returns false or the
// duration (if set) ends, recording each call's latency. With a rate, the
// calls are scheduled at that rate and each client takes the next slot:
// a call's latency counts from its slot, so a server that falls behind
// shows it in the percentiles instead of slowing the load down (the
// coordinated omission of closed-loop tools). The clients then bound the
// calls in flight, so give enough of them for the rate.
func runPhase(ctx context.Context, name string, clients int, d time.Duration, rate float64, op func(context.Context, int) (bool, error)) benchResult {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var slots atomic.Int64
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if rate > 0 {
					t0 = start.Add(time.Duration(float64(slots.Add(1)-1) / rate * float64(time.Second)))
					time.Sleep(time.Until(t0))
				}
				more, err := op(ctx, w)
				if !more {
					break
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	r := benchResult{Phase: name, Ops: len(lat), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		Throughput: float64(len(lat)) / elapsed.Seconds(), P50ms: pct(0.50), P95ms: pct(0.95), P99ms: pct(0.99)}
	if len(lat) > 0 {
		r.MaxMs = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	if e := firstErr.Load(); e != nil {
		fmt.Printf("%s: first error: %s\n", name, e)
	}
	return r
}
