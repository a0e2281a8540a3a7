package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// maxPruneEntries bounds the entries one prune command removes: the entries
// themselves go in one range delete, but each one's personal-data record is
// its own delete, and a log entry should stay small.
const maxPruneEntries = 2000

// PruneAudit enforces each workspace's audit retention (its plan's
// AuditRetentionDays): it removes the longest prefix of the chain whose
// entries are all older than the retention, together with their personal
// data, and keeps the last removed entry's number and hash as the anchor
// from which the rest of the chain verifies. The prune is itself an entry
// that names the anchor. Idempotent: a second run, or a run on a new leader
// after a failover, finds nothing more to remove. It returns how many
// entries it removed.
func (s *Service) PruneAudit(ctx context.Context) (int, error) {
	tenants, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, tenant := range tenants {
		plan, err := s.plan(tenant)
		if err != nil {
			return total, err
		}
		if plan.AuditRetentionDays <= 0 {
			continue
		}
		cutoff := s.now().Add(-time.Duration(plan.AuditRetentionDays) * 24 * time.Hour)
		for {
			n, err := s.pruneAuditBatch(ctx, tenant, cutoff, plan.AuditRetentionDays)
			total += n
			if err != nil {
				return total, fmt.Errorf("engine: prune audit of %s: %w", tenant, err)
			}
			if n < maxPruneEntries {
				break
			}
		}
	}
	return total, nil
}

// pruneAuditBatch removes up to maxPruneEntries of the oldest entries
// recorded before cutoff, in one command.
func (s *Service) pruneAuditBatch(ctx context.Context, tenant string, cutoff time.Time, days int) (int, error) {
	log, v := s.tenant(tenant)
	pruned := 0
	_, err := s.commit(ctx, log, func() (*change, error) {
		pruned = 0
		anchor, version, err := auditAnchor(v)
		if err != nil {
			return nil, err
		}
		var after storage.Key
		if anchor != nil {
			after = kAuditEntry(anchor.Seq)
		}
		var last RawAudit
		var lastAt time.Time
		var personal []string
		err = v.Scan(kAuditPrefix, storage.ScanOptions{After: after}, func(_ storage.Key, r storage.Record) error {
			if pruned == maxPruneEntries {
				return storage.ErrStop
			}
			h, payload, err := storage.ChainEntry(r.Value)
			if err != nil {
				return err
			}
			var rec auditRecord
			if err := jsonDecode(payload, &rec); err != nil {
				return fmt.Errorf("decode entry %d: %w", r.Stamp, err)
			}
			// A prefix only: proposers' clocks may differ a little, so an
			// entry is kept, with all after it, as soon as one is recent.
			if !rec.At.Before(cutoff) {
				return storage.ErrStop
			}
			if rec.Personal != "" {
				personal = append(personal, rec.ID)
			}
			last, lastAt = RawAudit{Seq: r.Stamp, Hash: hex.EncodeToString(h[:])}, rec.At
			pruned++
			return nil
		})
		if err != nil {
			return nil, err
		}
		if pruned == 0 {
			return nil, errNothingToPrune
		}
		first := uint64(1)
		if anchor != nil {
			first = anchor.Seq + 1
		}
		ch := s.newChange(tenant, "audit.prune", "system")
		// The anchor moves only from the version read, and the last entry
		// removed must still be there: a concurrent prune conflicts.
		ch.expect(kAuditAnchor, version)
		ch.expect(kAuditEntry(last.Seq), storage.AnyVersion)
		ch.op(storage.Op{Type: storage.OpDeleteRange, Key: kAuditEntry(first), End: kAuditEntry(last.Seq + 1)})
		for _, id := range personal {
			ch.del(kAuditPII(id))
		}
		ch.put(kAuditAnchor, AuditAnchor{Seq: last.Seq, Hash: last.Hash, At: lastAt, PrunedAt: s.now().UTC()}, version+1)
		s.audit(ctx, ch, auditInput{Action: "audit.prune", TargetKind: "workspace", TargetID: tenant,
			Detail: map[string]any{"through_seq": last.Seq, "anchor_hash": last.Hash, "entries": pruned, "retention_days": days}})
		return ch, nil
	})
	if errors.Is(err, errNothingToPrune) {
		return 0, nil
	}
	return pruned, err
}

var errNothingToPrune = errors.New("nothing to prune")
