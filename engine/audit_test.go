package engine_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// TestAuditTamperEvidence is RELIABILITY AU1: six kinds of tampering, each
// at 200 random positions of a real chain, all detected by VerifyAudit
// against heads exported every 100 entries and at the end.
func TestAuditTamperEvidence(t *testing.T) {
	w := newWorld(t)
	for i := range 320 {
		// Failed sign-ins are audited security events; 9 at a time stays
		// under the lock, and a good login clears the count.
		if i%9 == 8 {
			if _, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: fmt.Sprint("wrong ", i)})
	}
	stored, err := w.svc.ReadAudit(w.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	chain := stored.Entries
	if len(chain) < 300 {
		t.Fatalf("only %d audit entries", len(chain))
	}
	var heads []engine.AuditHead
	for _, e := range chain {
		if e.Seq%100 == 0 || int(e.Seq) == len(chain) {
			heads = append(heads, engine.AuditHead{Workspace: w.ws.ID, Seq: e.Seq, Hash: e.Hash})
		}
	}
	if err := engine.VerifyAudit(stored, heads); err != nil {
		t.Fatalf("the untouched chain fails: %v", err)
	}
	// Every entry carries who, where, what, on what, with what outcome, when.
	missing := 0
	for _, e := range chain {
		var a engine.AuditEntry
		if err := json.Unmarshal(e.Payload, &a); err != nil || a.Action == "" || a.Actor == "" || a.Workspace == "" || a.Outcome == "" || a.At.IsZero() || a.TargetID == "" {
			missing++
		}
	}
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	mutate := map[string]func([]engine.RawAudit, int) []engine.RawAudit{
		"modify": func(c []engine.RawAudit, i int) []engine.RawAudit {
			c[i].Payload = append(slices.Clone(c[i].Payload[:len(c[i].Payload)-1]), 'X')
			return c
		},
		"delete": func(c []engine.RawAudit, i int) []engine.RawAudit { return slices.Delete(c, i, i+1) },
		"swap": func(c []engine.RawAudit, i int) []engine.RawAudit {
			j := (i + 1 + rng.IntN(len(c)-1)) % len(c)
			c[i], c[j] = c[j], c[i]
			return c
		},
		"insert": func(c []engine.RawAudit, i int) []engine.RawAudit {
			forged := engine.RawAudit{Seq: c[i].Seq, Hash: c[i].Hash, Payload: []byte(`{"action":"forged"}`)}
			return slices.Insert(c, i, forged)
		},
		"truncate": func(c []engine.RawAudit, i int) []engine.RawAudit { return c[:i] },
		"rewrite": func(c []engine.RawAudit, i int) []engine.RawAudit {
			// Change entry i and recompute every hash after it: the links
			// all hold again; only the exported heads can tell.
			c[i].Payload = []byte(`{"action":"rewritten"}`)
			var prev [32]byte
			if i > 0 {
				b, _ := hex.DecodeString(c[i-1].Hash)
				copy(prev[:], b)
			}
			for j := i; j < len(c); j++ {
				h := storage.ChainHash(prev, c[j].Seq, c[j].Payload)
				c[j].Hash, prev = hex.EncodeToString(h[:]), h
			}
			return c
		},
	}
	detected, tried := 0, 0
	for _, kind := range []string{"modify", "delete", "swap", "insert", "truncate", "rewrite"} {
		for range 200 {
			c := slices.Clone(chain)
			i := rng.IntN(len(c))
			c = mutate[kind](c, i)
			tried++
			if engine.VerifyAudit(&engine.AuditChain{Workspace: w.ws.ID, Entries: c}, heads) != nil {
				detected++
			} else {
				t.Errorf("%s at %d not detected", kind, i)
			}
		}
	}
	figures.Report(t, "AU1", seed, []figures.Figure{
		figures.Eq("detected", float64(detected), float64(tried)),
		figures.Eq("entries_missing_fields", float64(missing), 0),
		figures.Guard("mutations", float64(tried), 1200),
	})
}
