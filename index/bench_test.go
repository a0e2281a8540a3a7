package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// benchWords are the most frequent words of the benchmark's vocabulary;
// synthetic words follow them (5,000 more), and word use follows a Zipf
// law, so the commonest word is in about a third of the tasks and a word
// of rank 300 in about 2%.
var benchWords = strings.Fields(`design review deploy release bug fix crash login page api server client mobile
android ios web search index query cache latency timeout retry payment invoice billing customer report export
import csv pdf email notification slack webhook github sso saml ldap oauth token session password reset
onboarding signup trial plan upgrade downgrade refund tax vat currency locale translation german japanese
french spanish accessibility contrast keyboard screen reader dark mode theme logo icon font layout grid table
chart graph dashboard widget filter sort pagination cursor scroll infinite lazy load image upload attachment
video audio recording transcript summary standup update weekly monthly quarterly roadmap milestone sprint
backlog epic story estimate points velocity burndown kanban board column swimlane label tag priority urgent
blocker dependency parent subtask checklist template recurring reminder due overdue calendar timezone
holiday vacation meeting agenda notes decision owner reviewer approver legal privacy gdpr retention audit
security vulnerability patch upgrade dependency library framework database migration schema index backup
restore snapshot replica cluster leader follower raft consensus partition network firewall proxy tls
certificate renewal monitoring alert pager incident postmortem runbook oncall metrics logs traces`)

type benchData struct {
	f        *fixture
	allowed  []string
	projects []string
	users    []string
	build    time.Duration
}

var (
	benchOnce sync.Once
	benchSet  *benchData
)

var benchVocab = func() []string {
	v := slices.Clone(benchWords)
	syl := strings.Fields("ka lo mi ra tu ne so vi pe da zu ri mo la fe no gi ta be su")
	for i := 0; len(v) < len(benchWords)+5000; i++ {
		v = append(v, syl[i%20]+syl[(i/20)%20]+syl[(i/400)%20])
	}
	return v
}()

func sentence(r *rand.Rand, n int) string {
	z := rand.NewZipf(r, 1.1, 20, uint64(len(benchVocab)-1))
	w := make([]string, n)
	for i := range w {
		w[i] = benchVocab[z.Uint64()]
	}
	return strings.Join(w, " ")
}

// loadBench writes 100,000 tasks in 50 projects
// through the log, as engine commands, and waits for the index to take
// them in.
func loadBench(b *testing.B) *benchData {
	benchOnce.Do(func() {
		if dir := os.Getenv("INDEX_BENCH_DIR"); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
				benchSet = reopenBench(b, dir)
				return
			}
		}
		f := newBenchFixture(b)
		r := rand.New(rand.NewPCG(1, 2))
		d := &benchData{f: f}
		for i := range 20 {
			d.users = append(d.users, fmt.Sprintf("u%02d", i))
		}
		for i := range 50 {
			p := &engProject{ID: f.id("p"), Key: fmt.Sprintf("P%02d", i), Name: sentence(r, 3), Description: sentence(r, 12), Statuses: defaultStatuses(), UpdatedAt: 1}
			f.putProject("bench", p)
			d.projects = append(d.projects, p.ID)
		}
		d.allowed = d.projects[:40] // the caller sees 40 of the 50
		start := time.Now()
		now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
		statuses := []string{"todo", "in_progress", "done"}
		var tasks []*engTask
		for i := range 100_000 {
			t := &engTask{ID: f.id("t"), ProjectID: d.projects[r.IntN(len(d.projects))], Title: sentence(r, 4+r.IntN(5)),
				Description: sentence(r, 10+r.IntN(40)), StatusID: statuses[r.IntN(3)], Priority: "none",
				Assignees: []string{d.users[r.IntN(len(d.users))]}, Tags: []string{benchWords[r.IntN(30)]},
				UpdatedAt: now - r.Int64N(365*24*3600*1000)}
			if r.IntN(3) == 0 {
				t.Due = time.UnixMilli(now).AddDate(0, 0, r.IntN(120)-30).Format(time.DateOnly)
			}
			tasks = append(tasks, t)
			if len(tasks) == 200 || i == 99_999 {
				f.putTasks("bench", tasks)
				tasks = tasks[:0]
			}
		}
		f.settle()
		d.build = time.Since(start)
		benchSet = d
		if dir := os.Getenv("INDEX_BENCH_DIR"); dir != "" {
			saveBench(b, d, dir)
		}
	})
	return benchSet
}

func BenchmarkSearch100k(b *testing.B) {
	d := loadBench(b)
	b.Logf("indexed 100,000 tasks through the log in %v", d.build)
	queries := []Query{
		{Text: "deploy"},
		{Text: "release notes"},
		{Text: "payment invoice"},
		{Text: "dash"},                   // prefix while typing
		{Text: "migration sch"},          // word + prefix
		{Text: `"database migration"`},   // phrase
		{Text: "status:done tag:design"}, // filters only
		{Text: "assignee:u03 due:<2026-11-15"},
		{Text: "security -patch status:todo"},
		{Text: "kanban board project:P01"},
		{Text: "P02-17"},
		{Text: "latency timeout retry cache"},
	}
	ctx := context.Background()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := queries[i%len(queries)]
		q.Allowed = d.allowed
		q.Now = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
		start := time.Now()
		if _, err := d.f.ix.Search(ctx, "bench", q); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	if testing.Verbose() {
		for qi, q := range queries {
			var ls []time.Duration
			for i := qi; i < len(lat); i += len(queries) {
				ls = append(ls, lat[i])
			}
			slices.Sort(ls)
			if len(ls) > 0 {
				b.Logf("%-40q median %v max %v", q.Text, ls[len(ls)/2], ls[len(ls)-1])
			}
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// newBenchFixture is a fixture that outlives the benchmark function (b.N
// grows over several calls); TestMain removes its directories.
func newBenchFixture(b *testing.B) *fixture {
	dir := os.Getenv("INDEX_BENCH_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "index-bench-"); err != nil {
			b.Fatal(err)
		}
		benchDirs = append(benchDirs, dir)
	}
	st, err := storage.Open(filepath.Join(dir, "store"), storage.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{t: b, st: st, idxDir: filepath.Join(dir, "index"), opts: Options{Workers: 2}, vers: map[string]uint64{}, stamps: map[string]uint64{}}
	f.openIndex()
	f.log = storage.NewLocalLog(st, storage.LocalLogOptions{})
	return f
}

var benchDirs []string

func benchFixture() *fixture {
	if benchSet == nil {
		return nil
	}
	return benchSet.f
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range []*fixture{benchFixture(), fuzzFix} {
		if f != nil {
			f.log.Close()
			f.ix.Close()
			f.st.Close()
		}
	}
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// INDEX_BENCH_DIR keeps the benchmark's store and index between runs
// (for profiling); the directory is not removed.
func saveBench(b *testing.B, d *benchData, dir string) {
	meta := mustJSON(map[string]any{"projects": d.projects, "users": d.users})
	if err := os.WriteFile(filepath.Join(dir, "ready"), meta, 0o644); err != nil {
		b.Fatal(err)
	}
}

func reopenBench(b *testing.B, dir string) *benchData {
	raw, err := os.ReadFile(filepath.Join(dir, "ready"))
	if err != nil {
		b.Fatal(err)
	}
	var meta struct{ Projects, Users []string }
	if err := json.Unmarshal(raw, &meta); err != nil {
		b.Fatal(err)
	}
	st, err := storage.Open(filepath.Join(dir, "store"), storage.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{t: b, st: st, idxDir: filepath.Join(dir, "index"), opts: Options{Workers: 2}, vers: map[string]uint64{}, stamps: map[string]uint64{}}
	f.openIndex()
	f.log = storage.NewLocalLog(st, storage.LocalLogOptions{})
	return &benchData{f: f, projects: meta.Projects, users: meta.Users, allowed: meta.Projects[:40]}
}

// BenchmarkIngest: single-task commands from 32 concurrent writers, as the
// engine proposes them; reports how many the index takes in per second
// (from the first write until the index has caught up with the last).
func BenchmarkIngest(b *testing.B) {
	f := newFixture(b, Options{})
	p := &engProject{ID: f.id("p"), Key: "ING", Name: "ingest", Statuses: defaultStatuses()}
	f.putProject("ing", p)
	f.settle()
	r := rand.New(rand.NewPCG(3, 4))
	tasks := make([]*engTask, b.N)
	for i := range tasks {
		tasks[i] = &engTask{ID: f.id("t"), ProjectID: p.ID, Title: sentence(r, 6), Description: sentence(r, 30), StatusID: "todo", UpdatedAt: int64(i)}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan *engTask)
	for range 32 {
		wg.Go(func() {
			for t := range next {
				op := []storage.Op{
					{Type: storage.OpAdd, Key: storage.K("cnt", "tasknum", p.ID), Delta: 1},
					{Type: storage.OpPut, Key: storage.K("task", t.ID), Value: mustJSON(t), Version: 1, StampRef: 1},
				}
				if _, err := f.log.Propose(context.Background(), &storage.Command{RequestID: t.ID, Tenant: "ing", Kind: "task.create", Ops: op}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, t := range tasks {
		next <- t
	}
	close(next)
	wg.Wait()
	applied := time.Since(start)
	f.settle()
	indexed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/applied.Seconds(), "applied/s")
	b.ReportMetric(float64(b.N)/indexed.Seconds(), "indexed/s")
	b.ReportMetric(float64((indexed - applied).Milliseconds()), "lag-ms")
}
