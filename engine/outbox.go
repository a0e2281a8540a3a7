package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Side effects leave through a durable outbox (DESIGN rule 4): the command
// that decides to send a mail also writes the message, rendered, as an
// outbox row of its workspace, indexed by when it is due (kOutboxDue), in
// the workspace's own keyspace only. A dispatcher on the leader visits every
// workspace and delivers its due rows after commit, at least once, with
// retries and backoff; the row's ID (derived from the command's
// RequestID) is the mail's Message-ID, so a repeat after a crash is
// recognisable. A crash between sending and recording the delivery means one
// more delivery with the same Message-ID, never a lost one.

// Message is one mail, fully rendered before the command is proposed.
type Message struct {
	ID      string    `json:"id"` // the Message-ID, <row id@host>
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Text    string    `json:"text"`
	HTML    string    `json:"html,omitempty"`
	Date    time.Time `json:"date"`
}

// Mailer delivers a message (engine/mail implements it over SMTP).
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

type outboxRecord struct {
	ID        string  `json:"id"`
	Kind      string  `json:"kind"` // "mail"
	Mail      Message `json:"mail"`
	CreatedAt int64   `json:"created_at"`
	Attempts  int     `json:"attempts"`
	NextAt    int64   `json:"next_at"`
	LastError string  `json:"last_error,omitempty"`
	Status    string  `json:"status"` // pending, failed
}

func kOutbox(id string) storage.Key { return storage.K("outbox", id) }

// kOutboxDue indexes a pending row by when it is next due:
// ix/obdue/<next_at, big-endian ms>/<id>, so a delivery run reads exactly
// the due rows of a workspace in one seek.
func kOutboxDue(at int64, id string) storage.Key {
	return storage.K("ix", "obdue").AddUint(uint64(max(at, 0))).Add(id)
}
func kOutboxDueAll() storage.Key { return storage.K("ix", "obdue") }

// sysLegacyOutboxQueue is the platform delivery queue of older data
// (drainLegacyOutboxQueue); nothing writes it any more.
func sysLegacyOutboxQueue() storage.Key { return storage.K("outq") }

// maxDeliveryAttempts bounds retries: with backoff doubling from 30 s up to
// an hour, the last attempt is about a day after the first.
const maxDeliveryAttempts = 30

// MailEnabled says whether this server sends mail: without it, the flows
// that need mail (magic links, password resets, confirmation links) answer
// 409 mail_unavailable.
func (s *Service) MailEnabled() bool { return s.mailer != nil }

// enqueueMail adds a rendered mail to ch's outbox. It does nothing when no
// mailer is configured (the callers then hand links over another way).
func (s *Service) enqueueMail(ch *change, tmpl string, to string, data mailData) error {
	if !s.MailEnabled() {
		return nil
	}
	subject, text, html, err := renderMail(tmpl, data)
	if err != nil {
		return err
	}
	ch.outboxN++
	id := ch.cmd.RequestID + "." + strconv.Itoa(ch.outboxN)
	now := s.now()
	rec := outboxRecord{
		ID: id, Kind: "mail", CreatedAt: now.UnixMilli(), NextAt: now.UnixMilli(), Status: "pending",
		Mail: Message{ID: "<" + id + "@" + s.mailHost() + ">", To: to, Subject: subject, Text: text, HTML: html, Date: now},
	}
	ch.put(kOutbox(id), rec, 1)
	ch.index(kOutboxDue(rec.NextAt, id))
	return nil
}

func (s *Service) mailHost() string {
	if u, err := url.Parse(s.cfg.BaseURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "teamflow.invalid"
}

// DeliveryReport says what one DeliverOutbox run did.
type DeliveryReport struct {
	Sent, Retried, Failed int
}

// maxDuePerWorkspace bounds how many due rows one run takes from one
// workspace, so a workspace with a backlog cannot hold up the others; the
// rest are taken by the next runs.
const maxDuePerWorkspace = 100

// DeliverOutbox sends every due outbox row once. Run it on the leader only;
// it is safe to run again at any time (a row is removed only after its
// delivery, under a precondition on its version).
//
// It visits every workspace and reads that workspace's own due index
// through the workspace's route (one bounded seek each), and records each
// delivery with a command on that route: nothing of it is a platform
// record, so a workspace's mail goes out wherever its store lives.
func (s *Service) DeliverOutbox(ctx context.Context) (DeliveryReport, error) {
	var rep DeliveryReport
	if !s.MailEnabled() {
		return rep, nil
	}
	if err := s.drainLegacyOutboxQueue(ctx); err != nil {
		return rep, err
	}
	tenants, err := s.workspaceIDs()
	if err != nil {
		return rep, err
	}
	for _, t := range tenants {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err := s.deliverWorkspaceOutbox(ctx, t, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (s *Service) deliverWorkspaceOutbox(ctx context.Context, tenant string, rep *DeliveryReport) error {
	log, v := s.tenant(tenant)
	now := s.now()
	type due struct {
		at int64
		id string
	}
	var queue []due
	if err := v.Scan(kOutboxDueAll(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		parts, err := k.Parts()
		if err != nil || len(parts) != 4 {
			return nil
		}
		at, ok := storage.Uint(parts[2])
		if !ok {
			return nil
		}
		if int64(at) > now.UnixMilli() || len(queue) >= maxDuePerWorkspace {
			return storage.ErrStop
		}
		queue = append(queue, due{int64(at), string(parts[3])})
		return nil
	}); err != nil {
		return err
	}
	for _, d := range queue {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		row, rec, err := getRecord[outboxRecord](v, kOutbox(d.id))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err != nil || row.Status != "pending" || row.NextAt != d.at {
			// An index entry without its row, or a stale one: drop it (and
			// index the row where it is due, when it is still pending).
			ch := s.newChange(tenant, "outbox.reindex", "system")
			ch.del(kOutboxDue(d.at, d.id))
			if err == nil {
				ch.expect(kOutbox(d.id), rec.Version)
				if row.Status == "pending" {
					ch.index(kOutboxDue(row.NextAt, d.id))
				}
			}
			if err := s.proposeDelivery(ctx, log, ch); err != nil {
				return err
			}
			continue
		}
		sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sendErr := s.mailer.Send(sendCtx, row.Mail)
		cancel()
		ch := s.newChange(tenant, "outbox.delivered", "system")
		ch.expect(kOutbox(d.id), rec.Version)
		ch.del(kOutboxDue(d.at, d.id))
		switch {
		case sendErr == nil:
			ch.del(kOutbox(d.id))
			rep.Sent++
		case row.Attempts+1 >= maxDeliveryAttempts:
			row.Attempts++
			row.Status, row.LastError = "failed", sendErr.Error()
			ch.put(kOutbox(d.id), row, rec.Version+1)
			rep.Failed++
			s.log.Error("mail delivery failed for good", "workspace", tenant, "outbox", d.id, "err", sendErr)
		default:
			row.Attempts++
			row.LastError = sendErr.Error()
			row.NextAt = s.now().Add(backoff(row.Attempts)).UnixMilli()
			ch.cmd.Kind = "outbox.retry"
			ch.put(kOutbox(d.id), row, rec.Version+1)
			ch.index(kOutboxDue(row.NextAt, d.id))
			rep.Retried++
			s.log.Warn("mail delivery failed; will retry", "workspace", tenant, "outbox", d.id, "attempt", row.Attempts, "err", sendErr)
		}
		if err := s.proposeDelivery(ctx, log, ch); err != nil {
			return err
		}
	}
	return nil
}

// proposeDelivery records what a delivery run did; a conflict means
// another run (a former leader) got there first, and is not an error.
func (s *Service) proposeDelivery(ctx context.Context, log Log, ch *change) error {
	res, err := log.Propose(ctx, &ch.cmd)
	if err != nil {
		return fmt.Errorf("engine: record delivery: %w", err)
	}
	if res.Err != nil && !errors.Is(res.Err, storage.ErrConflict) {
		return fmt.Errorf("engine: record delivery: %w", res.Err)
	}
	return nil
}

// drainLegacyOutboxQueue moves the platform delivery queue of older data
// (sys/outq/<tenant>/<id>, written beside each row until the outbox became
// tenant-only) into the workspaces' own due indexes: for each workspace a
// command on its route indexes its pending rows, then one platform command
// drops the queue entries. It costs one empty seek per run once drained;
// a crash between the two steps repeats the first (idempotent) next run.
func (s *Service) drainLegacyOutboxQueue(ctx context.Context) error {
	_, sys := s.sys()
	type entry struct {
		key        storage.Key
		tenant, id string
	}
	var entries []entry
	if err := sys.Scan(sysLegacyOutboxQueue(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		if len(entries) >= 256 {
			return storage.ErrStop
		}
		parts, err := k.Parts()
		if err != nil || len(parts) != 3 {
			entries = append(entries, entry{key: k})
			return nil
		}
		entries = append(entries, entry{k, string(parts[1]), string(parts[2])})
		return nil
	}); err != nil || len(entries) == 0 {
		return err
	}
	byTenant := map[string][]string{}
	var order []string
	for _, e := range entries {
		if e.tenant == "" || !validID(e.tenant) {
			continue
		}
		if _, ok := byTenant[e.tenant]; !ok {
			order = append(order, e.tenant)
		}
		byTenant[e.tenant] = append(byTenant[e.tenant], e.id)
	}
	for _, t := range order {
		log, v := s.tenant(t)
		_, err := s.commit(ctx, log, func() (*change, error) {
			ch := s.newChange(t, "outbox.requeue", "system")
			for _, id := range byTenant[t] {
				row, rec, err := getRecord[outboxRecord](v, kOutbox(id))
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if row.Status == "pending" {
					ch.expect(kOutbox(id), rec.Version)
					ch.index(kOutboxDue(row.NextAt, id))
				}
			}
			if len(ch.cmd.Ops) == 0 {
				return nil, errAlreadyDone
			}
			return ch, nil
		})
		if err != nil && !errors.Is(err, errAlreadyDone) {
			return err
		}
	}
	log, _ := s.sys()
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange("", "outbox.legacy_drop", "system")
		for _, e := range entries {
			ch.delSys(e.key)
		}
		return ch, nil
	})
	return err
}

// backoff doubles from 30 s up to an hour.
func backoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}
