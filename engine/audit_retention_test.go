package engine_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// failLogins records n failed sign-ins of email from ip.
func (w *world) failLogins(n int, email, ip string) {
	rctx := engine.WithRequestInfo(ctx, engine.RequestInfo{ID: uuid.NewString(), IP: ip, UserAgent: "test-agent/1"})
	for i := range n {
		w.svc.Login(rctx, engine.LoginInput{Workspace: "acme", Email: email, Password: fmt.Sprint("wrong ", i)})
	}
}

// tamper writes ops into the workspace's keyspace behind the engine's back.
func (w *world) tamper(t *testing.T, ops ...storage.Op) {
	t.Helper()
	res, err := w.env.Log.Propose(ctx, &storage.Command{RequestID: uuid.NewString(), Tenant: w.ws.ID, Kind: "test.tamper", Actor: "attacker", At: w.env.Clock.Now().UnixMilli(), Ops: ops})
	if err != nil || res.Err != nil {
		t.Fatalf("tamper: %v %v", err, res.Err)
	}
}

func (w *world) countPersonal(t *testing.T) int {
	t.Helper()
	n := 0
	if err := w.env.Store.Tenant(w.ws.ID).Scan(storage.K("auditpii"), storage.ScanOptions{}, func(storage.Key, storage.Record) error {
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAuditRetentionPrunesWithAnchor: the scheduled retention job, on the
// injected clock, removes the entries older than the plan's retention with
// their personal data, keeps the last one's hash as the anchor, and the
// rest of the chain still verifies; a removal inside the kept part is
// still detected, and so is an anchor no prune entry records.
func TestAuditRetentionPrunesWithAnchor(t *testing.T) {
	w := newWorld(t)
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "professional"); err != nil {
		t.Fatal(err)
	}
	w.failLogins(4, "olive@acme.test", "203.0.113.1")
	old, err := w.svc.ReadAudit(w.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	oldHead := old.Entries[len(old.Entries)-1]
	w.env.Clock.Advance(400 * 24 * time.Hour)
	w.failLogins(3, "olive@acme.test", "203.0.113.2")
	sched := w.svc.NewScheduler(func(id string, err error) {
		if id == "audit.retention" {
			t.Errorf("job %s: %v", id, err)
		}
	})
	w.env.Clock.Advance(400 * 24 * time.Hour) // the first events are 800 days old, the later 400
	if ran := sched.RunDue(ctx); !contains(ran, "audit.retention") {
		t.Fatalf("ran %v, want audit.retention", ran)
	}
	chain, err := w.svc.ReadAudit(w.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if chain.Anchor == nil || chain.Anchor.Seq != oldHead.Seq || chain.Anchor.Hash != oldHead.Hash {
		t.Fatalf("anchor %+v, want entry %d %s", chain.Anchor, oldHead.Seq, oldHead.Hash)
	}
	if chain.Entries[0].Seq != oldHead.Seq+1 {
		t.Fatalf("first kept entry %d, want %d", chain.Entries[0].Seq, oldHead.Seq+1)
	}
	// Heads exported before the prune still agree: the one at the anchor
	// with it, an older one is past checking.
	heads := []engine.AuditHead{{Seq: 1, Hash: old.Entries[0].Hash}, {Seq: oldHead.Seq, Hash: oldHead.Hash}}
	if err := engine.VerifyAudit(chain, heads); err != nil {
		t.Fatalf("pruned chain: %v", err)
	}
	if err := engine.VerifyAudit(chain, []engine.AuditHead{{Seq: oldHead.Seq, Hash: old.Entries[0].Hash}}); !errors.Is(err, engine.ErrAuditRewritten) {
		t.Fatalf("a head at the anchor with another hash: %v", err)
	}
	res, err := w.svc.VerifyWorkspaceAudit(ctx, w.owner)
	if err != nil || !res.OK || res.AnchorSeq != oldHead.Seq {
		t.Fatalf("verify after prune: %+v, %v", res, err)
	}
	// Personal data went with the pruned entries: only kept entries have it.
	if n := w.countPersonal(t); n != 3 {
		t.Fatalf("%d personal records after the prune, want the 3 of the kept failed sign-ins", n)
	}
	// Idempotent: the next day's run has nothing older to remove.
	w.env.Clock.Advance(24 * time.Hour)
	if n, err := w.svc.PruneAudit(ctx); err != nil || n != 0 {
		t.Fatalf("second prune removed %d, %v", n, err)
	}

	// Without the first kept entry, the chain no longer links to the anchor.
	chain, _ = w.svc.ReadAudit(w.ws.ID)
	if bad, err := engine.FirstBadAudit(&engine.AuditChain{Anchor: chain.Anchor, Entries: chain.Entries[1:]}, nil); !errors.Is(err, engine.ErrAuditBroken) || bad != oldHead.Seq+1 {
		t.Fatalf("first kept entry removed: %d, %v", bad, err)
	}
	// Nor can the anchor be moved forward over it: no prune entry names it.
	moved := &engine.AuditChain{Anchor: &engine.AuditAnchor{Seq: chain.Entries[0].Seq, Hash: chain.Entries[0].Hash}, Entries: chain.Entries[1:]}
	if _, err := engine.FirstBadAudit(moved, nil); !errors.Is(err, engine.ErrAuditBroken) {
		t.Fatalf("an anchor moved forward without a prune entry: %v", err)
	}
	// A removal inside the kept part, in the store, is detected and named.
	gone := chain.Entries[1].Seq
	w.tamper(t, storage.Op{Type: storage.OpDelete, Key: storage.K("audit").AddUint(gone)})
	res, err = w.svc.VerifyWorkspaceAudit(ctx, w.owner)
	if err != nil || res.OK || res.FirstBad != gone {
		t.Fatalf("removed kept entry %d: %+v, %v", gone, res, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAuditAnonymisation: erasing a member deletes only the personal data
// beside their entries (IP, user agent); the entries stay,
// by account ID, and the chain and the remaining personal data verify. A
// personal record altered in the store is detected.
func TestAuditAnonymisation(t *testing.T) {
	w := newWorld(t)
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "professional"); err != nil {
		t.Fatal(err)
	}
	bob := w.join(t, "bob", engine.RoleMember)
	w.failLogins(2, "bob@acme.test", "198.51.100.7")
	w.failLogins(1, "olive@acme.test", "203.0.113.1")
	if _, err := w.svc.AnonymiseAudit(ctx, bob, bob.UserID); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("a member erased: %v", err)
	}
	list := func() []engine.AuditEntry {
		t.Helper()
		p, err := w.svc.ListAudit(ctx, w.owner, engine.AuditFilter{}, engine.PageRequest{Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		return p.Items
	}
	about := func(es []engine.AuditEntry, id string) (withIP, erased int) {
		for _, e := range es {
			if e.TargetID == id || e.Actor == id {
				if e.IP != "" {
					withIP++
				}
				if e.Erased {
					erased++
				}
			}
		}
		return
	}
	if withIP, _ := about(list(), bob.UserID); withIP < 2 {
		t.Fatalf("%d entries about bob carry an IP before erasure", withIP)
	}
	before := w.countPersonal(t)
	er, err := w.svc.AnonymiseAudit(ctx, w.owner, bob.UserID)
	if err != nil || er.RecordsErased < 2 {
		t.Fatalf("erasure: %+v, %v", er, err)
	}
	es := list()
	withIP, erased := about(es, bob.UserID)
	// The two failed sign-ins to his account.
	if withIP != 0 || erased != 2 || er.RecordsErased != 2 {
		t.Fatalf("after erasure: %d entries about bob with an IP, %d erased, %d records erased; want 0, 2, 2", withIP, erased, er.RecordsErased)
	}
	if ownerIP, _ := about(es, w.owner.UserID); ownerIP == 0 {
		t.Fatal("the owner's personal data went too")
	}
	// The erasure's own entry has no personal record here (no request
	// information in this context).
	if n := w.countPersonal(t); n != before-er.RecordsErased {
		t.Fatalf("%d personal records, want %d", n, before-er.RecordsErased)
	}
	res, err := w.svc.VerifyWorkspaceAudit(ctx, w.owner)
	if err != nil || !res.OK || res.PersonalErased != er.RecordsErased {
		t.Fatalf("verify after erasure: %+v, %v", res, err)
	}
	// A personal record changed behind the engine's back no longer matches
	// the digest its entry carries.
	var victim engine.AuditEntry
	for _, e := range es {
		if e.TargetID == w.owner.UserID && e.IP != "" {
			victim = e
			break
		}
	}
	w.tamper(t, storage.Op{Type: storage.OpPut, Key: storage.K("auditpii", victim.ID), Value: []byte(`{"salt":"00","ip":"192.0.2.1"}`), Version: 1})
	if res, err := w.svc.VerifyWorkspaceAudit(ctx, w.owner); err != nil || res.OK || res.FirstBad != victim.Seq {
		t.Fatalf("altered personal data of %d: %+v, %v", victim.Seq, res, err)
	}
}
