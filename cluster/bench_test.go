package cluster_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster/clustertest"
)

// BenchmarkPropose3Nodes measures writes through a 3-node cluster on
// loopback with 32 concurrent writers spread over all nodes (the DESIGN.md
// target: ≥ 1,500/s, p95 ≤ 25 ms on 2 cores). Default tick (100 ms).
func BenchmarkPropose3Nodes(b *testing.B) {
	c := clustertest.New(b, clustertest.Options{Nodes: 3, Tick: 100 * time.Millisecond})
	c.Leader(long)
	nodes := c.Running()
	var mu sync.Mutex
	var lat []time.Duration
	var next int
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		m := nodes[next%len(nodes)]
		next++
		mu.Unlock()
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), long)
			_, err := m.Node.Propose(ctx, writeCmd("bench"))
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}
