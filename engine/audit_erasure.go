package engine

import (
	"context"
	"fmt"

	"github.com/teamflow/teamflow/storage"
)

// AuditErasure is the outcome of erasing a person from the audit trail.
type AuditErasure struct {
	MemberID      string `json:"member_id"`
	RecordsErased int    `json:"records_erased" doc:"Personal-data records deleted: the IPs, user agents and names of the entries about this person"`
	EntriesKept   int    `json:"entries_kept" doc:"Entries about this person that remain, by account ID only"`
}

// maxErasureOps bounds one erasure command, so erasing a long-standing
// member is a series of small commands rather than one huge log entry.
const maxErasureOps = 2000

// AnonymiseAudit erases a member's personal data from the workspace's audit
// trail (a GDPR erasure request; Owners and Admins): the personal-data
// records of every entry the member acted in or was the target of are
// deleted. The chained entries
// stay, naming the member by account ID only, so the chain still verifies;
// the erasure is itself an entry.
func (s *Service) AnonymiseAudit(ctx context.Context, p Principal, memberID string) (*AuditErasure, error) {
	if !p.Role.isAdmin() || p.Operator {
		return nil, forbidden("only Owners and Admins erase personal data from the audit trail")
	}
	if !validID(memberID) {
		return nil, notFound("member")
	}
	log, v := s.tenant(p.Tenant)
	u, _, err := getRecord[userRecord](v, kUser(memberID))
	if err != nil {
		return nil, err
	}
	ids, entries, err := s.auditPersonalOf(v, u)
	if err != nil {
		return nil, err
	}
	out := &AuditErasure{MemberID: memberID, RecordsErased: len(ids), EntriesKept: entries}
	for {
		n := min(len(ids), maxErasureOps)
		batch := ids[:n]
		ids = ids[n:]
		done := len(ids) == 0
		if _, err := s.commit(ctx, log, func() (*change, error) {
			ch := s.newChange(p.Tenant, "audit.anonymise", p.actor())
			for _, id := range batch {
				ch.del(kAuditPII(id))
			}
			if done {
				s.audit(ctx, ch, auditInput{Action: "audit.anonymise", TargetKind: "member", TargetID: memberID,
					Detail: map[string]any{"records_erased": out.RecordsErased}})
			}
			return ch, nil
		}); err != nil {
			return nil, fmt.Errorf("engine: erase audit personal data: %w", err)
		}
		if done {
			return out, nil
		}
	}
}

// auditPersonalOf finds the personal-data records of the entries u acted
// in or was the target of, and counts those entries.
func (s *Service) auditPersonalOf(v storage.View, u *userRecord) ([]string, int, error) {
	var ids []string
	entries := 0
	err := v.Scan(kAuditPrefix, storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		_, payload, err := storage.ChainEntry(r.Value)
		if err != nil {
			return err
		}
		var rec auditRecord
		if err := jsonDecode(payload, &rec); err != nil {
			return fmt.Errorf("engine: decode audit entry %d: %w", r.Stamp, err)
		}
		if rec.Actor != u.ID && rec.TargetID != u.ID {
			return nil
		}
		entries++
		if rec.Personal != "" {
			ids = append(ids, rec.ID)
		}
		return nil
	})
	return ids, entries, err
}
