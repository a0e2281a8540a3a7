package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/storage"
)

// TestDedicatedGroupOps: on a member serving a dedicated workspace,
// /metrics shows the group's store, raft and search figures under
// teamflow_group_*{group="G"} next to the shared ones (unchanged, without
// a label); /readyz answers 503 naming the group while the group is not
// open on the node, and while it is behind the move's ping index, and 200
// again once it is back; neither a workspace in mid-move (fenced: its
// group open nowhere yet) nor a group just after its flip makes a node
// unready, but one dedicated before the node started does at once.
func TestDedicatedGroupOps(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	ds := map[uint64]*dedicated{}
	for _, m := range c.Members() {
		ds[m.ID] = startDedicated(t, m, m.ID == 3)
	}
	ctx := context.Background()
	const ten = "t-ded"
	seedRecords(t, c.Leader(10*time.Second), ten, 5)

	// Member 3's /readyz and /metrics, as serve wires them.
	m3 := c.Member(3)
	n3 := &node{store: m3.Store, raft: m3.Node, ded: ds[3]}
	n3.booted.Store(true)
	reg := prometheus.NewRegistry()
	registerMetrics(reg, n3)
	api := httpapi.New(httpapi.Deps{State: state{n3}, Registry: reg}, httpapi.Config{}).Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	readyz := func(what string, code int, body string) {
		t.Helper()
		clustertest.Poll(t, 20*time.Second, what, func() (bool, string) {
			got, b := get("/readyz")
			return got == code && strings.Contains(b, body), fmt.Sprintf("%d %s", got, b)
		})
	}
	const ready = `{"status":"ready"}`
	readyz("ready before the move", http.StatusOK, ready)

	// Mid-move: every node serves the fenced workspace alike (reads from
	// the shared store), so none is taken out for it.
	ds[1].stopAfter = "fenced"
	if st, err := ds[1].Dedicate(ctx, ten, false); err != nil || st.State != routeFenced {
		t.Fatalf("dedicate (stopped after the fence): %+v %v", st, err)
	}
	clustertest.Poll(t, 10*time.Second, "the fence applied on member 3", func() (bool, string) {
		rec, _, err := readRoute(m3.Store.Sys(), ten)
		return rec != nil, fmt.Sprint(err)
	})
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("readyz while fenced: %d %s", code, body)
	}
	ds[1].stopAfter = ""
	st, err := ds[1].Dedicate(ctx, ten, false)
	if err != nil || st.State != routeDedicated {
		t.Fatalf("dedicate: %+v %v", st, err)
	}
	group := st.Group
	readyz("ready once the group applied its ping", http.StatusOK, ready)

	// The group's figures, each labelled with its ID; the shared ones
	// unchanged.
	label := fmt.Sprintf(`{group="%d"}`, group)
	clustertest.Poll(t, 10*time.Second, "the group's figures in /metrics", func() (bool, string) {
		_, body := get("/metrics")
		for _, want := range []string{
			"\nteamflow_group_store_applied_index" + label + " ", "\nteamflow_group_store_healthy" + label + " 1\n",
			"\nteamflow_group_raft_term" + label + " ", "\nteamflow_group_raft_commit_index" + label + " ",
			"\nteamflow_group_raft_proposals_total" + label + " ", "\nteamflow_group_search_ingested_total" + label + " ",
			"\nteamflow_store_applied_index ", "\nteamflow_raft_term ",
		} {
			if !strings.Contains(body, want) {
				return false, "no " + strings.TrimSpace(want)
			}
		}
		return true, ""
	})
	if got := gathered(t, reg, "teamflow_group_store_applied_index", fmt.Sprint(group)); got < float64(st.PingIndex) {
		t.Errorf("teamflow_group_store_applied_index = %v, below the ping index %d", got, st.PingIndex)
	}

	// The group is not open on member 3: 503 naming it, and no figures of
	// a group that is not there. Within groupWait of ready first finding
	// the workspace dedicated (as just after its flip) that is a move
	// settling (the router waits as long), not yet a failure.
	ds[3].Close()
	ds[3].mu.Lock()
	delete(ds[3].seen, ten)
	ds[3].mu.Unlock()
	if err := ds[3].ready(); err != nil {
		t.Errorf("ready just after the flip: %v", err)
	}
	readyz("unready while the group is not open", http.StatusServiceUnavailable,
		fmt.Sprintf(`"code":"group_not_ready","reason":"dedicated group %d is not open on this node"`, group))
	if _, body := get("/metrics"); strings.Contains(body, "teamflow_group_") {
		t.Errorf("figures of a closed group in /metrics")
	}
	// The operator's cluster status says why.
	if st, err := (state{n3}).ClusterStatus(ctx); err != nil || st.Ready ||
		st.NotReady != fmt.Sprintf("dedicated group %d is not open on this node", group) {
		t.Errorf("cluster status of the unready node: %+v %v", st, err)
	}
	reopen := func() {
		t.Helper()
		ds[3] = startDedicated(t, m3, true)
		n3.ded = ds[3]
		readyz("ready once the group reopened", http.StatusOK, ready)
	}
	reopen()
	// A workspace already dedicated when the groups started gets no
	// grace: no move of its is in progress.
	ds[3].Close()
	if err := ds[3].ready(); err == nil {
		t.Errorf("ready with the group closed after a start")
	}
	reopen()

	// The group behind the ping index its record names (as on a node
	// whose group has not applied the move's ping long after the flip).
	c.WaitConverged(10 * time.Second)
	rec, ver, err := readRoute(m3.Store.Sys(), ten)
	if err != nil || rec == nil {
		t.Fatalf("route: %+v %v", rec, err)
	}
	putRoute := func(r routeRecord, ver uint64) {
		t.Helper()
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		res := clustertest.Propose(t, c.Leader(10*time.Second), &storage.Command{RequestID: fmt.Sprintf("route-%d", ver), Kind: "test.route",
			Preconditions: []storage.Precondition{{Space: storage.SpaceSys, Key: routeKey(ten), Version: ver}},
			Ops:           []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: routeKey(ten), Value: b, Version: ver + 1}}}, 10*time.Second)
		if res.Err != nil {
			t.Fatalf("put route: %v", res.Err)
		}
	}
	ahead := *rec
	ahead.PingIndex += 1 << 40
	putRoute(ahead, ver)
	readyz("unready while the group lags", http.StatusServiceUnavailable,
		fmt.Sprintf("dedicated group %d has applied ", group))
	putRoute(*rec, ver+1)
	readyz("ready once the group caught up", http.StatusOK, ready)
}

// gathered is the value of reg's metric name with label group.
func gathered(t *testing.T, reg *prometheus.Registry, name, group string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{group=%q}", name, group)
	return 0
}
