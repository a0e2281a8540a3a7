package storage

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// A watch lets a reader cache what it decoded from a few tenant records
// and know, with one atomic load, that none of them has changed since:
// every tenant has a counter that Apply raises after it commits a command
// writing a key under one of Options.Watch's prefixes, and before the
// command's result is handed back (so a request that starts after a write
// was acknowledged sees the raised counter). Replacing the store's
// contents (a snapshot installed, a tenant seeded) raises every counter.
// Engine uses it for the records every request's authentication reads.
type watches struct {
	prefixes []Key
	m        sync.Map // tenant → *atomic.Uint64
}

// Watch is a tenant's counter in one store, as a View hands it out.
type Watch struct{ c *atomic.Uint64 }

// Stamp is the counter's value now; a cached value read after taking the
// stamp is current while Current(stamp) holds.
func (w Watch) Stamp() uint64 { return w.c.Load() }

// Current reports whether nothing watched changed since stamp was taken.
func (w Watch) Current(stamp uint64) bool { return w.c.Load() == stamp }

// Valid reports whether the view had a watch to give (a store opened
// with Options.Watch; never a snapshot's view).
func (w Watch) Valid() bool { return w.c != nil }

// Same reports whether two watches are the same counter (the same tenant
// in the same store).
func (w Watch) Same(o Watch) bool { return w.c == o.c }

func (ws *watches) counter(tenant string) *atomic.Uint64 {
	if c, ok := ws.m.Load(tenant); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := ws.m.LoadOrStore(tenant, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

// note raises the tenant's counter if cmd writes a watched key (or drops
// a range of the tenant's keys, which may hold one).
func (ws *watches) note(cmd *Command) {
	if len(ws.prefixes) == 0 || cmd == nil || cmd.Tenant == "" {
		return
	}
	for _, op := range cmd.Ops {
		if op.Space != SpaceTenant {
			continue
		}
		if op.Type == OpDeleteRange || ws.watched(op.Key) {
			ws.counter(cmd.Tenant).Add(1)
			return
		}
	}
}

func (ws *watches) watched(k Key) bool {
	for _, p := range ws.prefixes {
		if bytes.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// all raises every counter: the store's contents were replaced wholesale.
func (ws *watches) all() {
	ws.m.Range(func(_, c any) bool {
		c.(*atomic.Uint64).Add(1)
		return true
	})
}
