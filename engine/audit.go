package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
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
//
// The chain covers what happened and a digest of the personal data (IP,
// user agent, emails, free-text names), which is kept in a record beside
// the entry: erasing a person (AnonymiseAudit) deletes those records only,
// and retention (PruneAudit) removes a prefix of the chain, leaving an
// anchor from which the rest still verifies.

// RequestInfo is where a request came from, for the audit trail. httpapi
// puts it in the context of every request.
type RequestInfo struct {
	ID        string
	IP        string
	UserAgent string
	Route     string // method and route template, e.g. "GET /api/v1/audit"
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
	kAuditHead     = storage.K("audithead")
	kAuditPrefix   = storage.K("audit")
	kAuditPersonal = storage.K("auditpii")
	kAuditAnchor   = storage.K("auditanchor")
)

func kAuditEntry(seq uint64) storage.Key { return kAuditPrefix.AddUint(seq) }

func kAuditPII(id string) storage.Key { return kAuditPersonal.Add(id) }

// auditFormat is the version of the chained part of an entry. Format 1
// (before personal data was split off) carried the source IP inside the
// chain; its entries still read and verify, but their IP cannot be erased.
const auditFormat = 2

// AuditEntry is one recorded security event, as admins read it: the
// chained part joined with the personal data kept beside it.
type AuditEntry struct {
	Seq        uint64         `json:"seq"`
	ID         string         `json:"id,omitempty" doc:"The entry's own ID; its personal data is stored under it"`
	Action     string         `json:"action" doc:"e.g. auth.login, auth.login_failed, member.update, apikey.create"`
	Actor      string         `json:"actor" doc:"Account ID, operator, system or anonymous"`
	Workspace  string         `json:"workspace"`
	TargetKind string         `json:"target_kind,omitempty"`
	TargetID   string         `json:"target_id,omitempty"`
	Outcome    string         `json:"outcome" enum:"success,failure,denied"`
	At         time.Time      `json:"at"`
	RequestID  string         `json:"request_id,omitempty"`
	IP         string         `json:"ip,omitempty"`
	UserAgent  string         `json:"user_agent,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
	Erased     bool           `json:"personal_data_erased,omitempty" doc:"The entry's personal data (IP, user agent, names) was erased on request; the entry itself still verifies"`
	Hash       string         `json:"hash" doc:"SHA-256 chaining this entry to the previous one"`
}

// auditRecord is the chained part of an entry: what happened, to what, with
// what outcome, and by which account ID, but nothing that names a person.
// Personal data is a separate record (auditPersonal) that the chain covers
// only through its digest, so erasing it leaves every link intact.
type auditRecord struct {
	V          int            `json:"v,omitempty"`
	ID         string         `json:"id,omitempty"`
	Action     string         `json:"action"`
	Actor      string         `json:"actor"`
	Workspace  string         `json:"workspace"`
	TargetKind string         `json:"target_kind,omitempty"`
	TargetID   string         `json:"target_id,omitempty"`
	Outcome    string         `json:"outcome"`
	At         time.Time      `json:"at"`
	RequestID  string         `json:"request_id,omitempty"`
	IP         string         `json:"ip,omitempty"` // format 1 only
	Detail     map[string]any `json:"detail,omitempty"`
	Personal   string         `json:"personal,omitempty"` // hex SHA-256 of the personal record's stored bytes
}

// auditPersonal is an entry's personal data. The random salt makes its
// digest in the chain useless for confirming a guessed IP or email once
// the record (and with it the salt) is erased.
type auditPersonal struct {
	Salt      string         `json:"salt"`
	IP        string         `json:"ip,omitempty"`
	UserAgent string         `json:"user_agent,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
}

type auditInput struct {
	Action     string
	TargetKind string
	TargetID   string
	Outcome    string
	Detail     map[string]any // facts that name no person: roles, reasons, formats
	Personal   map[string]any // facts that may name a person: emails, free-text names
}

// audit appends an event to the change's workspace chain and stores its
// personal data beside it, in the same batch. Never put secrets in Detail
// or Personal: the trail is read by admins and exported.
func (s *Service) audit(ctx context.Context, ch *change, in auditInput) {
	if ch.cmd.Tenant == "" {
		return
	}
	ri := requestInfo(ctx)
	e := auditRecord{
		V: auditFormat, ID: newID(), Action: in.Action, Actor: ch.cmd.Actor, Workspace: ch.cmd.Tenant, TargetKind: in.TargetKind, TargetID: in.TargetID,
		Outcome: in.Outcome, At: time.UnixMilli(ch.cmd.At).UTC(), RequestID: ri.ID, Detail: in.Detail,
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	if e.Outcome == "" {
		e.Outcome = "success"
	}
	if e.RequestID == "" {
		// A scheduled job has no request: its command's ID is what makes
		// its run idempotent, and names it.
		e.RequestID = ch.cmd.RequestID
	}
	if ri.IP != "" || ri.UserAgent != "" || len(in.Personal) > 0 {
		pv := mustJSON(auditPersonal{Salt: rand.Text(), IP: ri.IP, UserAgent: ri.UserAgent, Detail: in.Personal})
		d := sha256.Sum256(pv)
		e.Personal = hex.EncodeToString(d[:])
		ch.op(storage.Op{Type: storage.OpPut, Key: kAuditPII(e.ID), Value: pv, Version: 1})
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

// deniedCodes are the refusals of a signed-in principal that AuditDenied
// records: a role, scope or plan that does not allow the request. Other
// refusals (a wrong code, a blocked network) are audited where they happen.
var deniedCodes = map[string]bool{"forbidden": true, "plan_feature_unavailable": true, "insufficient_scope": true, "mfa_enrolment_required": true}

// AuditDenied records that a signed-in principal was refused a request
// (code is the problem code it got). httpapi calls it for every such
// answer, whether the engine or the API's own checks refused.
func (s *Service) AuditDenied(ctx context.Context, p Principal, code string) {
	if p.Tenant == "" || p.Operator || !deniedCodes[code] {
		return
	}
	s.auditEvent(ctx, p.Tenant, p.actor(), auditInput{Action: "authz.denied", TargetKind: "route", TargetID: requestInfo(ctx).Route, Outcome: "denied",
		Detail: map[string]any{"code": code}})
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

// decodeAudit reads a stored entry and joins its personal data, if any is
// left.
func decodeAudit(v storage.View, r storage.Record) (*AuditEntry, error) {
	h, payload, err := storage.ChainEntry(r.Value)
	if err != nil {
		return nil, err
	}
	var rec auditRecord
	if err := jsonDecode(payload, &rec); err != nil {
		return nil, fmt.Errorf("engine: decode audit entry %d: %w", r.Stamp, err)
	}
	e := &AuditEntry{
		Seq: r.Stamp, ID: rec.ID, Action: rec.Action, Actor: rec.Actor, Workspace: rec.Workspace, TargetKind: rec.TargetKind, TargetID: rec.TargetID,
		Outcome: rec.Outcome, At: rec.At, RequestID: rec.RequestID, IP: rec.IP, Detail: rec.Detail, Hash: hex.EncodeToString(h[:]),
	}
	if rec.Personal == "" {
		return e, nil
	}
	pr, err := v.Get(kAuditPII(rec.ID))
	if errors.Is(err, storage.ErrNotFound) {
		e.Erased = true
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	var pd auditPersonal
	if err := jsonDecode(pr.Value, &pd); err != nil {
		return nil, fmt.Errorf("engine: decode audit personal data %d: %w", r.Stamp, err)
	}
	e.IP, e.UserAgent = pd.IP, pd.UserAgent
	if len(pd.Detail) > 0 {
		merged := make(map[string]any, len(e.Detail)+len(pd.Detail))
		maps.Copy(merged, e.Detail)
		maps.Copy(merged, pd.Detail)
		e.Detail = merged
	}
	return e, nil
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
		e, err := decodeAudit(v, r)
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
			e, err := decodeAudit(v, r)
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
	OK             bool      `json:"ok"`
	Entries        int       `json:"entries" doc:"Entries checked"`
	AnchorSeq      uint64    `json:"anchor_seq,omitempty" doc:"Entries up to this number were pruned by retention; the chain is checked from the anchor they left"`
	HeadSeq        uint64    `json:"head_seq" doc:"Number of the last entry, as the chain head records it"`
	HeadHash       string    `json:"head_hash,omitempty"`
	PersonalErased int       `json:"personal_erased" doc:"Entries whose personal data was erased on request (they still verify)"`
	FirstBad       uint64    `json:"first_bad_seq,omitempty" doc:"The first entry that does not verify (altered, removed, reordered or inserted)"`
	Problem        string    `json:"problem,omitempty"`
	CheckedAt      time.Time `json:"checked_at"`
}

// VerifyWorkspaceAudit checks the caller's workspace chain from its anchor
// (or first entry) to the stored head, and every personal-data record
// against the digest its entry carries (Owners and Admins); it records the
// check.
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
	if rec, err := v.Get(kAuditHead); err == nil {
		seq, h, err := storage.ChainHead(rec.Value)
		if err != nil {
			return nil, err
		}
		res.HeadSeq, res.HeadHash = seq, hex.EncodeToString(h[:])
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	chain, err := s.ReadAudit(tenant)
	if err != nil {
		return nil, err
	}
	res.Entries = len(chain.Entries)
	if chain.Anchor != nil {
		res.AnchorSeq = chain.Anchor.Seq
	}
	var heads []AuditHead
	if res.HeadSeq > 0 {
		heads = []AuditHead{{Workspace: tenant, Seq: res.HeadSeq, Hash: res.HeadHash, At: res.CheckedAt}}
	}
	if bad, err := FirstBadAudit(chain, heads); err != nil {
		res.OK, res.FirstBad, res.Problem = false, bad, err.Error()
		return res, nil
	}
	// Personal data is outside the chain, bound to it by a digest: a record
	// that is present must match; a missing one was erased.
	for _, e := range chain.Entries {
		var rec auditRecord
		if err := jsonDecode(e.Payload, &rec); err != nil {
			return nil, fmt.Errorf("engine: decode audit entry %d: %w", e.Seq, err)
		}
		if rec.Personal == "" {
			continue
		}
		pr, err := v.Get(kAuditPII(rec.ID))
		if errors.Is(err, storage.ErrNotFound) {
			res.PersonalErased++
			continue
		}
		if err != nil {
			return nil, err
		}
		if d := sha256.Sum256(pr.Value); hex.EncodeToString(d[:]) != rec.Personal {
			res.OK, res.FirstBad = false, e.Seq
			res.Problem = fmt.Sprintf("%v: the personal data of entry %d does not match its digest", ErrAuditBroken, e.Seq)
			return res, nil
		}
	}
	return res, nil
}

// RawAudit is one stored chain entry as the verifier reads it: the chained
// part only, never the personal data beside it.
type RawAudit struct {
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`    // hex SHA-256
	Payload []byte `json:"payload"` // the entry's JSON
}

// AuditAnchor is what retention pruning leaves of the entries it removed:
// the number and hash of the last one, from which the rest of the chain
// still links.
type AuditAnchor struct {
	Seq      uint64    `json:"seq"`
	Hash     string    `json:"hash"`
	At       time.Time `json:"at" doc:"When the last pruned entry was recorded"`
	PrunedAt time.Time `json:"pruned_at"`
}

// AuditChain is a workspace's stored chain: the anchor of the pruned
// prefix, if any, and the entries after it, in order.
type AuditChain struct {
	Workspace string       `json:"workspace"`
	Anchor    *AuditAnchor `json:"anchor,omitempty"`
	Entries   []RawAudit   `json:"entries"`
}

// AuditHead is a chain head exported outside the store: the anchor that
// makes truncation and a consistent rewrite detectable.
type AuditHead struct {
	Workspace string    `json:"workspace"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	At        time.Time `json:"at"`
}

// ReadAudit returns a workspace's whole stored chain (the operator's export
// and the verifier use it).
func (s *Service) ReadAudit(tenant string) (*AuditChain, error) {
	_, v := s.tenant(tenant)
	// Reads are not one snapshot: a prune between reading the anchor and
	// scanning would look like removed entries, so the anchor is read again
	// after the scan and the read repeated if a prune got in between.
	for range maxAttempts {
		out := &AuditChain{Workspace: tenant, Entries: []RawAudit{}}
		anchor, version, err := auditAnchor(v)
		if err != nil {
			return nil, err
		}
		out.Anchor = anchor
		err = v.Scan(kAuditPrefix, storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			h, payload, err := storage.ChainEntry(r.Value)
			if err != nil {
				return err
			}
			out.Entries = append(out.Entries, RawAudit{Seq: r.Stamp, Hash: hex.EncodeToString(h[:]), Payload: append([]byte(nil), payload...)})
			return nil
		})
		if err != nil {
			return nil, err
		}
		if _, again, err := auditAnchor(v); err != nil {
			return nil, err
		} else if again == version {
			return out, nil
		}
	}
	return nil, conflict("write_contention", "the audit trail is being pruned; try again")
}

// auditAnchor reads the anchor left by retention pruning and its record
// version (nil and 0 before the first prune).
func auditAnchor(v storage.View) (*AuditAnchor, uint64, error) {
	a, rec, err := getRecord[AuditAnchor](v, kAuditAnchor)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return a, rec.Version, nil
}

// AuditHeads reads every workspace's current chain head, for export.
func (s *Service) AuditHeads() ([]AuditHead, error) {
	_, sys := s.sys()
	var out []AuditHead
	err := sys.Scan(sysWorkspaces(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		h, ok, err := s.AuditHead(lastPart(k))
		if ok {
			out = append(out, h)
		}
		return err
	})
	return out, err
}

// AuditHead reads one workspace's current chain head; ok is false while
// its trail is empty.
func (s *Service) AuditHead(tenant string) (h AuditHead, ok bool, err error) {
	_, v := s.tenant(tenant)
	rec, err := v.Get(kAuditHead)
	if errors.Is(err, storage.ErrNotFound) {
		return AuditHead{}, false, nil
	}
	if err != nil {
		return AuditHead{}, false, err
	}
	seq, hash, err := storage.ChainHead(rec.Value)
	if err != nil {
		return AuditHead{}, false, err
	}
	return AuditHead{Workspace: tenant, Seq: seq, Hash: hex.EncodeToString(hash[:]), At: s.now()}, true, nil
}

// Errors of VerifyAudit.
var (
	ErrAuditBroken    = errors.New("audit chain broken")
	ErrAuditTruncated = errors.New("audit chain shorter than an exported head")
	ErrAuditRewritten = errors.New("audit chain differs from an exported head")
)

// VerifyAudit checks a chain: entries numbered from the anchor's number + 1
// (or 1) without gaps, each hash the SHA-256 of the previous hash (the
// anchor's, for the first kept entry), its number and its payload; an
// anchor confirmed by the audit.prune entry that left it; and every
// exported head of this workspace past the anchor found in the chain with
// the same hash. A modified, removed, reordered or inserted entry breaks
// the links; a truncated tail or a wholesale consistent rewrite is caught
// only by the heads exported before it happened.
func VerifyAudit(c *AuditChain, heads []AuditHead) error {
	_, err := FirstBadAudit(c, heads)
	return err
}

// pruneRecord is the part of an audit.prune entry that confirms an anchor.
type pruneRecord struct {
	Action string `json:"action"`
	Detail struct {
		ThroughSeq uint64 `json:"through_seq"`
		AnchorHash string `json:"anchor_hash"`
	} `json:"detail"`
}

// FirstBadAudit is VerifyAudit that also names the first entry that does
// not verify (for a truncated chain, the first missing one).
func FirstBadAudit(c *AuditChain, heads []AuditHead) (uint64, error) {
	var prev [32]byte
	var base uint64
	if c.Anchor != nil {
		b, err := hex.DecodeString(c.Anchor.Hash)
		if err != nil || len(b) != len(prev) {
			return c.Anchor.Seq + 1, fmt.Errorf("%w: the anchor's hash is malformed", ErrAuditBroken)
		}
		copy(prev[:], b)
		base = c.Anchor.Seq
	}
	byseq := make(map[uint64]string, len(c.Entries))
	anchorConfirmed := c.Anchor == nil
	for i, e := range c.Entries {
		want := base + uint64(i) + 1
		if e.Seq != want {
			return want, fmt.Errorf("%w: entry %d has number %d", ErrAuditBroken, want, e.Seq)
		}
		h := storage.ChainHash(prev, e.Seq, e.Payload)
		if hex.EncodeToString(h[:]) != e.Hash {
			return e.Seq, fmt.Errorf("%w: entry %d does not link to the one before", ErrAuditBroken, e.Seq)
		}
		prev = h
		byseq[e.Seq] = e.Hash
		if !anchorConfirmed && bytes.Contains(e.Payload, []byte(`"audit.prune"`)) {
			var pr pruneRecord
			if jsonDecode(e.Payload, &pr) == nil && pr.Action == "audit.prune" && pr.Detail.ThroughSeq == base && pr.Detail.AnchorHash == c.Anchor.Hash {
				anchorConfirmed = true
			}
		}
	}
	last := base + uint64(len(c.Entries))
	if !anchorConfirmed {
		// Every prune appends the entry naming its anchor after the entries
		// it keeps, so the latest anchor is always confirmed by a kept one.
		return base + 1, fmt.Errorf("%w: no audit.prune entry records the anchor at %d", ErrAuditBroken, base)
	}
	for _, hd := range heads {
		switch {
		case hd.Seq < base:
			// Pruned by retention: nothing is left to compare with.
		case hd.Seq == base:
			if hd.Hash != c.Anchor.Hash {
				return base + 1, fmt.Errorf("%w: the anchor at %d", ErrAuditRewritten, base)
			}
		default:
			got, ok := byseq[hd.Seq]
			switch {
			case !ok:
				return last + 1, fmt.Errorf("%w: head %d exported at %s, chain ends at %d", ErrAuditTruncated, hd.Seq, hd.At.Format(time.RFC3339), last)
			case got != hd.Hash:
				return hd.Seq, fmt.Errorf("%w: entry %d", ErrAuditRewritten, hd.Seq)
			}
		}
	}
	return 0, nil
}

// PlatformReadAudit returns a workspace's stored audit chain to the
// platform operator, for verification against the exported heads: the
// chained parts only, no personal data. The read itself is recorded in
// that workspace's trail first: everything the operator does inside a
// workspace is audited.
func (s *Service) PlatformReadAudit(ctx context.Context, p Principal, slug string) (*AuditChain, error) {
	if err := requireOperator(p); err != nil {
		return nil, err
	}
	tenant, err := s.workspaceBySlug(slug)
	if err != nil {
		return nil, err
	}
	if err := s.auditPlatformAccess(ctx, p, tenant, "platform.audit_read"); err != nil {
		return nil, err
	}
	return s.ReadAudit(tenant)
}

// auditPlatformAccess records in a workspace's trail that the platform
// operator is about to read it; the read must not happen if the record
// cannot be written.
func (s *Service) auditPlatformAccess(ctx context.Context, p Principal, tenant, action string) error {
	log, _ := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, action, p.actor())
		s.audit(ctx, ch, auditInput{Action: action, TargetKind: "workspace", TargetID: tenant})
		return ch, nil
	})
	return err
}
