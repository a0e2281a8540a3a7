package engine_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// tokenSecretRE finds the random part of every TeamFlow secret: refresh
// tokens (tfr_), invitations (tfi_) and API keys (tfk_) end in 32 random
// bytes as unpadded base64url (43 characters).
var tokenSecretRE = regexp.MustCompile(`[A-Za-z0-9_-]{43}`)

// TestTokenQuality is figure A4: 10,000 refresh tokens, 1,000 API keys and
// 1,000 invitation tokens are all different, carry at least 16 random bytes,
// and none of them is stored in plain text (the store keeps hashes); and a
// sign-in always starts a new session (no fixation).
func TestTokenQuality(t *testing.T) {
	w := newWorld(t)
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "enterprise"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tokens []string
	keep := func(tok string) {
		mu.Lock()
		tokens = append(tokens, tok)
		mu.Unlock()
	}
	parallel := func(n int, op func() error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() { errs <- op() })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// Refresh tokens: 16 sessions each rotated 625 times.
	const chains, rotations = 16, 625
	sessions := map[string]bool{}
	fixation := 0
	for range chains {
		res, p := w.ownerLogin(t)
		if sessions[p.SessionID] || p.SessionID == w.owner.SessionID {
			fixation++
		}
		sessions[p.SessionID] = true
		keep(res.Tokens.RefreshToken)
	}
	heads := append([]string(nil), tokens...)
	var next sync.Mutex
	i := 0
	parallel(chains, func() error {
		next.Lock()
		tok := heads[i]
		i++
		next.Unlock()
		for range rotations - 1 {
			res, err := w.svc.Refresh(ctx, tok)
			if err != nil {
				return err
			}
			tok = res.Tokens.RefreshToken
			keep(tok)
		}
		return nil
	})
	// API keys and invitations, 1,000 each.
	parallel(1000, func() error {
		k, err := w.svc.CreateAPIKey(ctx, w.owner, engine.CreateAPIKeyInput{Name: "k", Scopes: []string{"read"}})
		if err == nil {
			keep(k.Token)
		}
		return err
	})
	var invN sync.Mutex
	n := 0
	parallel(1000, func() error {
		invN.Lock()
		n++
		email := "invitee" + strings.Repeat("x", n%7) + "@" + base64.RawURLEncoding.EncodeToString([]byte{byte(n), byte(n >> 8)}) + ".acme.test"
		invN.Unlock()
		inv, err := w.svc.Invite(ctx, w.owner, strings.ToLower(email), engine.RoleMember)
		if err == nil {
			keep(inv.Token)
		}
		return err
	})

	seen := map[string]bool{}
	secrets := map[string]bool{}
	duplicates, minEntropy := 0, 1<<30
	for _, tok := range tokens {
		if seen[tok] {
			duplicates++
		}
		seen[tok] = true
		// prefix_id_random: the random part (which may hold '_' itself) is
		// what an attacker has to guess.
		parts := strings.SplitN(tok, "_", 3)
		if len(parts) != 3 {
			t.Fatalf("%q: not prefix_id_random", tok)
		}
		random := parts[2]
		if b, err := base64.RawURLEncoding.DecodeString(random); err != nil {
			t.Fatalf("%q: random part is not base64url: %v", tok, err)
		} else {
			minEntropy = min(minEntropy, len(b))
		}
		secrets[random] = true
	}
	// Nothing in the workspace's keyspace or the platform's holds a secret.
	plaintext, candidates := 0, 0
	scan := func(v storage.View) {
		err := v.Scan(nil, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
			for _, b := range [][]byte{k, r.Value} {
				for _, m := range tokenSecretRE.FindAll(b, -1) {
					candidates++
					if secrets[string(m)] {
						plaintext++
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	scan(w.env.Store.Tenant(w.ws.ID))
	scan(w.env.Store.Sys())
	figures.Report(t, "A4", 0, []figures.Figure{
		figures.Eq("duplicates", float64(duplicates), 0),
		figures.Ge("min_entropy_bytes", float64(minEntropy), 16),
		figures.Eq("stored_plaintext", float64(plaintext), 0),
		figures.Eq("fixation", float64(fixation), 0),
		figures.Guard("tokens", float64(len(tokens)), chains*rotations+2000),
		// Hashes and IDs match the pattern too: the scan did look.
		figures.Guard("stored_strings_checked", float64(candidates), 10000),
	})
}
