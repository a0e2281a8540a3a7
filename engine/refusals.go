package engine

import (
	"context"
	"sort"
	"sync"
)

// Refused credentials that name no record of any workspace (a malformed
// token, a token its workspace never issued, a sign-in to an unknown
// workspace slug) are not written to an audit trail: there is no workspace
// whose trail they belong in, and the platform has no trail of its own. A
// token that merely spells a workspace's ID earns no entry there either:
// anyone can write one, and the workspace has no record of it (the
// isolation test, T1, holds every route but the password sign-in to that).
// Each is logged as one structured line and counted here; httpapi exports
// the counts as teamflow_auth_refused_unaudited_total{purpose,reason}.

// RefusalCount is one counter of refusals that left no audit entry.
type RefusalCount struct {
	Purpose string // login, refresh, mfa, verify_email, password_reset, magic_link, invitation
	Reason  string // malformed, unknown_workspace, unknown_token, account_locked
	Count   int64
}

type refusalKey struct{ purpose, reason string }

// refusalCounter is safe for concurrent use; its zero value is ready.
type refusalCounter struct {
	mu sync.Mutex
	m  map[refusalKey]int64
}

func (c *refusalCounter) add(purpose, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[refusalKey]int64{}
	}
	c.m[refusalKey{purpose, reason}]++
}

func (c *refusalCounter) snapshot() []RefusalCount {
	c.mu.Lock()
	out := make([]RefusalCount, 0, len(c.m))
	for k, n := range c.m {
		out = append(out, RefusalCount{Purpose: k.purpose, Reason: k.reason, Count: n})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Purpose != out[j].Purpose {
			return out[i].Purpose < out[j].Purpose
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// UnauditedRefusals reports, since start, the refused credentials and
// sign-ins this node logged and counted without an audit entry (see above).
func (s *Service) UnauditedRefusals() []RefusalCount { return s.refusals.snapshot() }

// refusedUnaudited logs and counts a refusal that earns no audit entry. It
// never logs the credential itself, nor the email typed.
func (s *Service) refusedUnaudited(ctx context.Context, purpose, reason string) {
	s.refusals.add(purpose, reason)
	ri := requestInfo(ctx)
	s.log.Info("credential refused without an audit entry", "purpose", purpose, "reason", reason, "request_id", ri.ID, "ip", ri.IP)
}
