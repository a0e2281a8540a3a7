package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/index"
	"github.com/teamflow/teamflow/storage"
)

// A figure is one number of a store, log, raft group or search index,
// read when /metrics is scraped. The shared group's (and a single node's)
// are exported as teamflow_<name>, as they always were; each dedicated
// group's as teamflow_group_<name>{group="G"} (groupCollector). Separate
// names rather than a group label on the existing series: queries written
// for one store (a sum of teamflow_raft_is_leader, an applied-index lag
// across nodes) keep their meaning, and a family never mixes label sets.
type figure[T any] struct {
	name, help string
	counter    bool
	value      func(T) float64
}

func (f figure[T]) valueType() prometheus.ValueType {
	if f.counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}

// register registers the shared figures of src.
func register[T any](reg *prometheus.Registry, figs []figure[T], src T) {
	for _, f := range figs {
		v := func() float64 { return f.value(src) }
		if f.counter {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "teamflow_" + f.name, Help: f.help}, v))
		} else {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "teamflow_" + f.name, Help: f.help}, v))
		}
	}
}

func boolFigure(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

var storeFigures = []figure[*storage.Store]{
	{name: "store_applied_index", help: "Last log index applied to the store.",
		value: func(st *storage.Store) float64 { return float64(st.AppliedIndex()) }},
	{name: "store_healthy", help: "1 while the store accepts writes.",
		value: func(st *storage.Store) float64 { return boolFigure(st.Healthy() == nil) }},
}

var logFigures = []figure[*storage.LocalLog]{
	{name: "log_proposals_total", help: "Commands applied through the log.", counter: true,
		value: func(l *storage.LocalLog) float64 { return float64(l.Stats().Proposals) }},
	{name: "log_batches_total", help: "Synced batches (proposals / batches = group-commit factor).", counter: true,
		value: func(l *storage.LocalLog) float64 { return float64(l.Stats().Batches) }},
}

// statsCounter is a counter read from src's stats (of type S).
func statsCounter[T, S any](name, help string, stats func(T) S, f func(S) uint64) figure[T] {
	return figure[T]{name: name, help: help, counter: true, value: func(src T) float64 { return float64(f(stats(src))) }}
}

func raftCounter(name, help string, f func(cluster.Stats) uint64) figure[*cluster.Node] {
	return statsCounter(name, help, (*cluster.Node).Stats, f)
}

var raftFigures = []figure[*cluster.Node]{
	{name: "raft_is_leader", help: "1 while this node is the raft leader.",
		value: func(r *cluster.Node) float64 { return boolFigure(r.IsLeader()) }},
	{name: "raft_term", help: "Current raft term.",
		value: func(r *cluster.Node) float64 { return float64(r.Status().Term) }},
	{name: "raft_commit_index", help: "Highest log index known committed.",
		value: func(r *cluster.Node) float64 { return float64(r.Status().Commit) }},
	raftCounter("raft_proposals_total", "Proposals handed to raft.", func(s cluster.Stats) uint64 { return s.Proposals }),
	raftCounter("raft_proposals_dropped_total", "Proposals raft dropped (retried with the same request ID).", func(s cluster.Stats) uint64 { return s.ProposalsDropped }),
	raftCounter("raft_read_barriers_total", "Linearizable read barriers (ReadIndex).", func(s cluster.Stats) uint64 { return s.ReadBarriers }),
	raftCounter("raft_leader_changes_total", "Leader changes seen by this node.", func(s cluster.Stats) uint64 { return s.LeaderChanges }),
	raftCounter("raft_snapshots_sent_total", "Snapshots streamed to followers.", func(s cluster.Stats) uint64 { return s.SnapshotsSent }),
	raftCounter("raft_snapshots_installed_total", "Snapshots installed from the leader.", func(s cluster.Stats) uint64 { return s.SnapshotsInstalled }),
	raftCounter("raft_compactions_total", "Raft log compactions.", func(s cluster.Stats) uint64 { return s.Compactions }),
}

func indexCounter(name, help string, f func(index.Stats) uint64) figure[*index.Index] {
	return statsCounter(name, help, (*index.Index).Stats, f)
}

var indexFigures = []figure[*index.Index]{
	{name: "search_indexes_open", help: "Workspace search indexes open now.",
		value: func(ix *index.Index) float64 { return float64(ix.Stats().Open) }},
	{name: "search_queued_commands", help: "Applied commands waiting to be indexed.",
		value: func(ix *index.Index) float64 { return float64(ix.Stats().Queued) }},
	indexCounter("search_ingested_total", "Applied commands indexed.", func(s index.Stats) uint64 { return s.Ingested }),
	indexCounter("search_rebuilds_total", "Workspace indexes rebuilt from the store.", func(s index.Stats) uint64 { return s.Rebuilds }),
	indexCounter("search_reconciles_total", "Workspace indexes reconciled with the store.", func(s index.Stats) uint64 { return s.Reconciles }),
	indexCounter("search_errors_total", "Failed index batches, rebuilds or reconciles.", func(s index.Stats) uint64 { return s.Errors }),
}

// registerMetrics registers the figures of n's store, log, raft groups and
// search indexes.
func registerMetrics(reg *prometheus.Registry, n *node) {
	register(reg, storeFigures, n.store)
	if n.ix != nil {
		register(reg, indexFigures, n.ix)
	}
	if n.local != nil {
		register(reg, logFigures, n.local)
		return
	}
	register(reg, raftFigures, n.raft)
	reg.MustRegister(newGroupCollector(n.ded))
}

// groupFigure is a figure of every dedicated group open on this node.
type groupFigure struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*groupRun) float64
}

func groupFigures[T any](figs []figure[T], of func(*groupRun) T) []groupFigure {
	out := make([]groupFigure, 0, len(figs))
	for _, f := range figs {
		out = append(out, groupFigure{
			desc:  prometheus.NewDesc("teamflow_group_"+f.name, f.help+" Per dedicated group.", []string{"group"}, nil),
			typ:   f.valueType(),
			value: func(g *groupRun) float64 { return f.value(of(g)) },
		})
	}
	return out
}

// groupCollector exports the figures of the dedicated groups open on this
// node when scraped, so a group opened or closed later needs no
// registration. The label is the group's ID, not the workspace's: /metrics
// may be public, and `teamflow cluster status` maps groups to workspaces.
type groupCollector struct {
	d    *dedicated
	figs []groupFigure
}

func newGroupCollector(d *dedicated) groupCollector {
	figs := groupFigures(storeFigures, func(g *groupRun) *storage.Store { return g.store })
	figs = append(figs, groupFigures(raftFigures, func(g *groupRun) *cluster.Node { return g.raft })...)
	if d.search {
		// Every group has its own index then (dedicated.open).
		figs = append(figs, groupFigures(indexFigures, func(g *groupRun) *index.Index { return g.ix })...)
	}
	return groupCollector{d: d, figs: figs}
}

func (c groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.figs {
		ch <- f.desc
	}
}

func (c groupCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.d.list() {
		id := strconv.FormatUint(g.id, 10)
		for _, f := range c.figs {
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, f.value(g), id)
		}
	}
}
