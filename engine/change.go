package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/teamflow/teamflow/storage"
)

// change builds one storage.Command: the resolved writes of one request,
// with the versions they expect.
type change struct {
	cmd     storage.Command
	plan    string // the workspace's plan, named in limit errors
	outboxN int    // outbox rows added, numbering their IDs
}

func (s *Service) newChange(tenant, kind, actor string) *change {
	return &change{cmd: storage.Command{
		RequestID: newID(),
		Tenant:    tenant,
		Kind:      kind,
		Actor:     actor,
		At:        s.now().UnixMilli(),
	}}
}

// expect requires key (tenant space) to be at version; 0 = absent.
func (c *change) expect(key storage.Key, version uint64) {
	c.cmd.Preconditions = append(c.cmd.Preconditions, storage.Precondition{Key: key, Version: version})
}

func (c *change) expectSys(key storage.Key, version uint64) {
	c.cmd.Preconditions = append(c.cmd.Preconditions, storage.Precondition{Space: storage.SpaceSys, Key: key, Version: version})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only engine types are marshalled here; failing is a programming error.
		panic(fmt.Sprintf("engine: marshal %T: %v", v, err))
	}
	return b
}

// put writes record v at key as version.
func (c *change) put(key storage.Key, v any, version uint64) int {
	return c.op(storage.Op{Type: storage.OpPut, Key: key, Value: mustJSON(v), Version: version})
}

// putStamped writes a record whose stamp comes from the result of op ref.
func (c *change) putStamped(key storage.Key, v any, version uint64, ref int) int {
	return c.op(storage.Op{Type: storage.OpPut, Key: key, Value: mustJSON(v), Version: version, StampRef: uint16(ref + 1)})
}

// putKeep rewrites a record keeping its stamp.
func (c *change) putKeep(key storage.Key, v any, version, stamp uint64) int {
	return c.op(storage.Op{Type: storage.OpPut, Key: key, Value: mustJSON(v), Version: version, Stamp: stamp})
}

func (c *change) putSys(key storage.Key, v any, version uint64) int {
	return c.op(storage.Op{Type: storage.OpPut, Space: storage.SpaceSys, Key: key, Value: mustJSON(v), Version: version})
}

// index writes an index entry (an empty record) at key.
func (c *change) index(key storage.Key) int {
	return c.op(storage.Op{Type: storage.OpPut, Key: key, Version: 1})
}

// indexRef writes an index entry at key + the result of op ref.
func (c *change) indexRef(key storage.Key, value []byte, ref int) int {
	return c.op(storage.Op{Type: storage.OpPut, Key: key, Value: value, Version: 1, KeyRef: uint16(ref + 1)})
}

func (c *change) del(key storage.Key) int {
	return c.op(storage.Op{Type: storage.OpDelete, Key: key})
}

func (c *change) delSys(key storage.Key) int {
	return c.op(storage.Op{Type: storage.OpDelete, Space: storage.SpaceSys, Key: key})
}

// delGone deletes the keys of old that cur no longer has: the index
// entries a record's previous version had and its new one does not.
func (c *change) delGone(old, cur []storage.Key) {
	for _, k := range old {
		if !containsKey(cur, k) {
			c.del(k)
		}
	}
}

func containsKey(list []storage.Key, k storage.Key) bool {
	return slices.ContainsFunc(list, func(x storage.Key) bool { return string(x) == string(k) })
}

// delRange deletes every key under prefix.
func (c *change) delRange(prefix storage.Key) int {
	return c.op(storage.Op{Type: storage.OpDeleteRange, Key: prefix})
}

// add changes a counter by delta; it returns the op's index, whose result
// is the new value.
func (c *change) add(key storage.Key, delta int64) int {
	return c.op(storage.Op{Type: storage.OpAdd, Key: key, Delta: delta})
}

// addBounded changes a counter and refuses the whole command when the new
// value would pass max (a plan limit, named by limit).
func (c *change) addBounded(key storage.Key, delta, max int64, limit string) int {
	return c.op(storage.Op{Type: storage.OpAdd, Key: key, Delta: delta, Bounded: true, Min: 0, Max: max, Limit: limit})
}

func (c *change) op(op storage.Op) int {
	c.cmd.Ops = append(c.cmd.Ops, op)
	return len(c.cmd.Ops) - 1
}

// maxAttempts bounds the re-read and retry loop on write conflicts.
const maxAttempts = 16

// commit proposes the change built by build, rebuilding it from fresh reads
// when another write got in between (a conflict), so that concurrent edits of
// different fields both land. build returns an error to stop (validation,
// permission, If-Match mismatch).
func (s *Service) commit(ctx context.Context, log Log, build func() (*change, error)) (storage.Result, error) {
	for range maxAttempts {
		ch, err := build()
		if err != nil {
			return storage.Result{}, err
		}
		res, err := log.Propose(ctx, &ch.cmd)
		if err != nil {
			return storage.Result{}, fmt.Errorf("engine: propose %s: %w", ch.cmd.Kind, err)
		}
		if res.Err == nil {
			return res, nil
		}
		var le *storage.LimitError
		switch {
		case errors.As(res.Err, &le):
			return res, planLimit(le.Limit, ch.plan, le.Max)
		case errors.Is(res.Err, storage.ErrConflict):
			continue
		default:
			return res, fmt.Errorf("engine: apply %s: %w", ch.cmd.Kind, res.Err)
		}
	}
	return storage.Result{}, conflict("write_contention", "the resource is being changed by others; try again")
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// validID reports whether s is a canonical UUID, so malformed IDs answer
// not found without touching the store.
func validID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// getRecord reads and decodes a JSON record.
//
// Records whose keys are never reused (sessions, accounts, projects: their
// IDs are UUIDs and they are never re-created) are decoded once per version:
// a version names exactly one content, so the cache needs no invalidation.
// Callers get their own copy and may change it.
func getRecord[T any](v storage.View, key storage.Key) (*T, storage.Record, error) {
	rec, err := v.Get(key)
	if err != nil {
		return nil, rec, err
	}
	out := new(T)
	if _, ok := any(out).(versionCacheable); ok {
		ck := string(v.Prefix()) + string(key)
		if cached, ok := decoded.get(ck, rec.Version); ok {
			*out = cached.(T)
			return out, rec, nil
		}
		if err := json.Unmarshal(rec.Value, out); err != nil {
			return nil, rec, fmt.Errorf("engine: decode %s: %w", key, err)
		}
		decoded.put(ck, rec.Version, *out)
		return out, rec, nil
	}
	if err := json.Unmarshal(rec.Value, out); err != nil {
		return nil, rec, fmt.Errorf("engine: decode %s: %w", key, err)
	}
	return out, rec, nil
}

// versionCacheable marks record types whose keys are never reused.
type versionCacheable interface{ neverReusedKey() }

func (*sessionRecord) neverReusedKey()   {}
func (*userRecord) neverReusedKey()      {}
func (*projectRecord) neverReusedKey()   {}
func (*workspaceRecord) neverReusedKey() {}
func (*apiKeyRecord) neverReusedKey()    {}

// decoded is the process's cache of decoded records by key and version.
var decoded = newVersionCache(50_000)

// lastPart returns the last component of a key as a string.
func lastPart(k storage.Key) string {
	last, err := k.Last()
	if err != nil {
		return ""
	}
	return last
}
