package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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

// auditEvent records an event on its own, for outcomes that write nothing
// else (a refused token, a wrong code): the command holds only the entry.
func (s *Service) auditEvent(ctx context.Context, tenant, actor string, in auditInput) {
	log, _ := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, in.Action, actor)
		s.audit(ctx, ch, in)
		return ch, nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("record audit event", "action", in.Action, "err", err)
	}
}

// AuditFilter narrows an audit query; zero fields match everything.
type AuditFilter struct {
	Actor  string    // account ID, operator, system or anonymous
	Action string    // exact action, or a prefix ending in "." (e.g. "auth.")
	From   time.Time // inclusive
	To     time.Time // exclusive
}

func (f AuditFilter) validate() error {
	if len(f.Actor) > 64 || len(f.Action) > 64 {
		return invalid("actor", "invalid_filter", "actor and action are at most 64 characters")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return invalid("to", "invalid_range", "to must be after from")
	}
	return nil
}

func (f AuditFilter) match(e *AuditEntry) bool {
	if f.Actor != "" && e.Actor != f.Actor {
		return false
	}
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			if !strings.HasPrefix(e.Action, f.Action) {
				return false
			}
		} else if e.Action != f.Action {
			return false
		}
	}
	if !f.From.IsZero() && e.At.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !e.At.Before(f.To) {
		return false
	}
	return true
}

func decodeAudit(r storage.Record) (*AuditEntry, error) {
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
}

// auditReader checks that p may read the trail: Owners and Admins, on a
// plan with the audit log (and, for exports, with audit export).
func (s *Service) auditReader(p Principal, export bool) error {
	if !p.Role.isAdmin() || p.Operator {
		return forbidden("only Owners and Admins read the audit trail")
	}
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return err
	}
	if !plan.AuditLog {
		return planFeature("the audit log", plan.Name)
	}
	if export && !plan.AuditExport {
		return planFeature("audit export", plan.Name)
	}
	return nil
}

// auditScanLimit bounds the entries one page may skip over while filtering,
// so a narrow filter over a long trail answers in bounded time: the page
// then ends early with a cursor to continue from.
const auditScanLimit = 20_000

// ListAudit pages through the workspace's audit trail, newest first, with
// optional filters (Owners and Admins; the plan must include audit logs).
func (s *Service) ListAudit(ctx context.Context, p Principal, f AuditFilter, pg PageRequest) (*Page[AuditEntry], error) {
	if err := s.auditReader(p, false); err != nil {
		return nil, err
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	limit, err := pg.limit()
	if err != nil {
		return nil, err
	}
	after, err := cursorKey(pg.Cursor, kAuditPrefix)
	if err != nil {
		return nil, err
	}
	_, v := s.tenant(p.Tenant)
	out := &Page[AuditEntry]{Items: []AuditEntry{}}
	var last storage.Key
	scanned := 0
	err = v.Scan(kAuditPrefix, storage.ScanOptions{After: after, Reverse: true}, func(k storage.Key, r storage.Record) error {
		if len(out.Items) == limit || scanned == auditScanLimit {
			out.NextCursor = encodeCursor(last)
			return storage.ErrStop
		}
		scanned++
		e, err := decodeAudit(r)
		if err != nil {
			return err
		}
		last = append(last[:0], k...)
		if !f.From.IsZero() && e.At.Before(f.From) {
			// Newest first: everything further is older still.
			return storage.ErrStop
		}
		if f.match(e) {
			out.Items = append(out.Items, *e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExportAudit authorises an export of the trail (Owners and Admins, on a
// plan with audit export), records the export in the trail itself, and
// returns a function that streams the matching entries, oldest first.
func (s *Service) ExportAudit(ctx context.Context, p Principal, f AuditFilter, format string) (func(yield func(*AuditEntry) error) error, error) {
	if err := s.auditReader(p, true); err != nil {
		return nil, err
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	detail := map[string]any{"format": format}
	if f.Actor != "" {
		detail["actor"] = f.Actor
	}
	if f.Action != "" {
		detail["action"] = f.Action
	}
	if !f.From.IsZero() {
		detail["from"] = f.From.UTC().Format(time.RFC3339)
	}
	if !f.To.IsZero() {
		detail["to"] = f.To.UTC().Format(time.RFC3339)
	}
	log, v := s.tenant(p.Tenant)
	if _, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(p.Tenant, "audit.export", p.actor())
		s.audit(ctx, ch, auditInput{Action: "audit.export", TargetKind: "workspace", TargetID: p.Tenant, Detail: detail})
		return ch, nil
	}); err != nil {
		return nil, err
	}
	return func(yield func(*AuditEntry) error) error {
		return v.Scan(kAuditPrefix, storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := decodeAudit(r)
			if err != nil {
				return err
			}
			if !f.To.IsZero() && !e.At.Before(f.To) {
				return storage.ErrStop
			}
			if !f.match(e) {
				return nil
			}
			return yield(e)
		})
	}, nil
}

// AuditVerification is the outcome of checking a workspace's chain.
type AuditVerification struct {
	OK        bool      `json:"ok"`
	Entries   int       `json:"entries" doc:"Entries checked"`
	HeadSeq   uint64    `json:"head_seq" doc:"Number of the last entry, as the chain head records it"`
	HeadHash  string    `json:"head_hash,omitempty"`
	FirstBad  uint64    `json:"first_bad_seq,omitempty" doc:"The first entry that does not verify (altered, removed, reordered or inserted)"`
	Problem   string    `json:"problem,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// VerifyWorkspaceAudit checks the caller's workspace chain from its first
// entry to the stored head (Owners and Admins) and records the check.
func (s *Service) VerifyWorkspaceAudit(ctx context.Context, p Principal) (*AuditVerification, error) {
	if !p.Role.isAdmin() || p.Operator {
		return nil, forbidden("only Owners and Admins verify the audit trail")
	}
	res, err := s.verifyChain(p.Tenant)
	if err != nil {
		return nil, err
	}
	outcome := "success"
	if !res.OK {
		outcome = "failure"
		s.log.Error("audit chain does not verify", "workspace", p.Tenant, "first_bad_seq", res.FirstBad, "problem", res.Problem)
	}
	s.auditEvent(ctx, p.Tenant, p.actor(), auditInput{Action: "audit.verify", TargetKind: "workspace", TargetID: p.Tenant, Outcome: outcome,
		Detail: map[string]any{"ok": res.OK, "entries": res.Entries, "first_bad_seq": res.FirstBad}})
	return res, nil
}

func (s *Service) verifyChain(tenant string) (*AuditVerification, error) {
	// The head first: entries appended after it is read are checked for
	// their links, and the chain must reach at least the head.
	res := &AuditVerification{OK: true, CheckedAt: s.now().UTC()}
	_, v := s.tenant(tenant)
	var headSeq uint64
	var headHash string
	if rec, err := v.Get(kAuditHead); err == nil {
		seq, h, err := storage.ChainHead(rec.Value)
		if err != nil {
			return nil, err
		}
		headSeq, headHash = seq, hex.EncodeToString(h[:])
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	res.HeadSeq, res.HeadHash = headSeq, headHash
	chain, err := s.ReadAudit(tenant)
	if err != nil {
		return nil, err
	}
	res.Entries = len(chain)
	var heads []AuditHead
	if headSeq > 0 {
		heads = []AuditHead{{Workspace: tenant, Seq: headSeq, Hash: headHash, At: res.CheckedAt}}
	}
	if bad, err := FirstBadAudit(chain, heads); err != nil {
		res.OK, res.FirstBad, res.Problem = false, bad, err.Error()
	}
	return res, nil
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
	_, err := FirstBadAudit(entries, heads)
	return err
}

// FirstBadAudit is VerifyAudit that also names the first entry that does
// not verify (for a truncated chain, the first missing one).
func FirstBadAudit(entries []RawAudit, heads []AuditHead) (uint64, error) {
	var prev [32]byte
	byseq := make(map[uint64]string, len(entries))
	for i, e := range entries {
		want := uint64(i + 1)
		if e.Seq != want {
			return want, fmt.Errorf("%w: entry %d has number %d", ErrAuditBroken, want, e.Seq)
		}
		h := storage.ChainHash(prev, e.Seq, e.Payload)
		if hex.EncodeToString(h[:]) != e.Hash {
			return e.Seq, fmt.Errorf("%w: entry %d does not link to the one before", ErrAuditBroken, e.Seq)
		}
		prev = h
		byseq[e.Seq] = e.Hash
	}
	for _, hd := range heads {
		got, ok := byseq[hd.Seq]
		switch {
		case !ok:
			return uint64(len(entries) + 1), fmt.Errorf("%w: head %d exported at %s, chain ends at %d", ErrAuditTruncated, hd.Seq, hd.At.Format(time.RFC3339), len(entries))
		case got != hd.Hash:
			return hd.Seq, fmt.Errorf("%w: entry %d", ErrAuditRewritten, hd.Seq)
		}
	}
	return 0, nil
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
