package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// The audit trail is a per-workspace hash chain (storage.OpChain): each
// security event is appended in the same batch as the change it records,
// numbered by the log, and linked to the previous entry by SHA-256, so a
// modified, removed, reordered or inserted entry breaks the chain. Truncating
// the tail or rewriting the whole chain consistently is caught only against
// a head exported elsewhere (ExportAuditHeads).

// RequestInfo is where a request came from, for the audit trail. httpapi
// puts it in the context of every request.
type RequestInfo struct {
	ID        string
	IP        string
	UserAgent string
}

type requestInfoKey struct{}

// WithRequestInfo returns ctx carrying ri.
func WithRequestInfo(ctx context.Context, ri RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

func requestInfo(ctx context.Context) RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return ri
}

var (
	kAuditHead   = storage.K("audithead")
	kAuditPrefix = storage.K("audit")
)

// AuditEntry is one recorded security event.
type AuditEntry struct {
	Seq        uint64         `json:"seq"`
	Action     string         `json:"action" doc:"e.g. auth.login, auth.login_failed, member.update, apikey.create"`
	Actor      string         `json:"actor" doc:"Account ID, operator, system or anonymous"`
	Workspace  string         `json:"workspace"`
	TargetKind string         `json:"target_kind,omitempty"`
	TargetID   string         `json:"target_id,omitempty"`
	Outcome    string         `json:"outcome" enum:"success,failure,denied"`
	At         time.Time      `json:"at"`
	RequestID  string         `json:"request_id,omitempty"`
	IP         string         `json:"ip,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
	Hash       string         `json:"hash" doc:"SHA-256 chaining this entry to the previous one"`
}

type auditInput struct {
	Action     string
	TargetKind string
	TargetID   string
	Outcome    string
	Detail     map[string]any
}

// audit appends an event to the change's workspace chain. Never put secrets
// in Detail: the trail is read by admins and exported.
func (s *Service) audit(ctx context.Context, ch *change, in auditInput) {
	if ch.cmd.Tenant == "" {
		return
	}
	ri := requestInfo(ctx)
	e := AuditEntry{
		Action: in.Action, Actor: ch.cmd.Actor, Workspace: ch.cmd.Tenant, TargetKind: in.TargetKind, TargetID: in.TargetID,
		Outcome: in.Outcome, At: time.UnixMilli(ch.cmd.At).UTC(), RequestID: ri.ID, IP: ri.IP, Detail: in.Detail,
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	if e.Outcome == "" {
		e.Outcome = "success"
	}
	ch.op(storage.Op{Type: storage.OpChain, Key: kAuditHead, End: kAuditPrefix, Value: mustJSON(e)})
}

// ListAudit pages through the workspace's audit trail, newest first
// (Owners and Admins; the plan must include audit logs).
func (s *Service) ListAudit(ctx context.Context, p Principal, pg PageRequest) (*Page[AuditEntry], error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins read the audit trail")
	}
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	if !plan.AuditLog {
		return nil, planFeature("the audit log", plan.Name)
	}
	_, v := s.tenant(p.Tenant)
	return scanPage(v, kAuditPrefix, pg, true, func(_ storage.Key, r storage.Record) (*AuditEntry, error) {
		h, payload, err := storage.ChainEntry(r.Value)
		if err != nil {
			return nil, err
		}
		var e AuditEntry
		if err := jsonDecode(payload, &e); err != nil {
			return nil, err
		}
		e.Seq, e.Hash = r.Stamp, hex.EncodeToString(h[:])
		return &e, nil
	})
}

// RawAudit is one stored chain entry as the verifier reads it.
type RawAudit struct {
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`    // hex SHA-256
	Payload []byte `json:"payload"` // the entry's JSON
}

// AuditHead is a chain head exported outside the store: the anchor that
// makes truncation and a consistent rewrite detectable.
type AuditHead struct {
	Workspace string    `json:"workspace"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	At        time.Time `json:"at"`
}

// ReadAudit returns a workspace's whole chain, in order (the operator's
// export and the verifier use it).
func (s *Service) ReadAudit(tenant string) ([]RawAudit, error) {
	_, v := s.tenant(tenant)
	var out []RawAudit
	err := v.Scan(kAuditPrefix, storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		h, payload, err := storage.ChainEntry(r.Value)
		if err != nil {
			return err
		}
		out = append(out, RawAudit{Seq: r.Stamp, Hash: hex.EncodeToString(h[:]), Payload: append([]byte(nil), payload...)})
		return nil
	})
	return out, err
}

// AuditHeads reads every workspace's current chain head, for export.
func (s *Service) AuditHeads() ([]AuditHead, error) {
	_, sys := s.sys()
	var out []AuditHead
	now := s.now()
	err := sys.Scan(sysWorkspaces(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		tenant := lastPart(k)
		_, v := s.tenant(tenant)
		rec, err := v.Get(kAuditHead)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		seq, h, err := storage.ChainHead(rec.Value)
		if err != nil {
			return err
		}
		out = append(out, AuditHead{Workspace: tenant, Seq: seq, Hash: hex.EncodeToString(h[:]), At: now})
		return nil
	})
	return out, err
}

// Errors of VerifyAudit.
var (
	ErrAuditBroken    = errors.New("audit chain broken")
	ErrAuditTruncated = errors.New("audit chain shorter than an exported head")
	ErrAuditRewritten = errors.New("audit chain differs from an exported head")
)

// VerifyAudit checks a chain: entries numbered 1, 2, … without gaps, each
// hash the SHA-256 of the previous hash, its number and its payload; and
// every exported head of this workspace found in the chain with the same
// hash. A modified, removed, reordered or inserted entry breaks the links;
// a truncated tail or a wholesale consistent rewrite is caught only by the
// heads exported before it happened.
func VerifyAudit(entries []RawAudit, heads []AuditHead) error {
	var prev [32]byte
	byseq := make(map[uint64]string, len(entries))
	for i, e := range entries {
		want := uint64(i + 1)
		if e.Seq != want {
			return fmt.Errorf("%w: entry %d has number %d", ErrAuditBroken, want, e.Seq)
		}
		h := storage.ChainHash(prev, e.Seq, e.Payload)
		if hex.EncodeToString(h[:]) != e.Hash {
			return fmt.Errorf("%w: entry %d does not link to the one before", ErrAuditBroken, e.Seq)
		}
		prev = h
		byseq[e.Seq] = e.Hash
	}
	for _, hd := range heads {
		got, ok := byseq[hd.Seq]
		switch {
		case !ok:
			return fmt.Errorf("%w: head %d exported at %s, chain ends at %d", ErrAuditTruncated, hd.Seq, hd.At.Format(time.RFC3339), len(entries))
		case got != hd.Hash:
			return fmt.Errorf("%w: entry %d", ErrAuditRewritten, hd.Seq)
		}
	}
	return nil
}

// PlatformReadAudit returns a workspace's whole audit chain to the platform
// operator, for verification against the exported heads. The read itself
// is recorded in that workspace's trail first: everything the operator does
// inside a workspace is audited.
func (s *Service) PlatformReadAudit(ctx context.Context, p Principal, slug string) (string, []RawAudit, error) {
	if err := requireOperator(p); err != nil {
		return "", nil, err
	}
	tenant, err := s.workspaceBySlug(slug)
	if err != nil {
		return "", nil, err
	}
	log, _ := s.tenant(tenant)
	if _, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, "platform.audit_read", p.actor())
		s.audit(ctx, ch, auditInput{Action: "platform.audit_read", TargetKind: "workspace", TargetID: tenant})
		return ch, nil
	}); err != nil {
		return "", nil, err
	}
	chain, err := s.ReadAudit(tenant)
	return tenant, chain, err
}
