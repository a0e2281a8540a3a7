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
// outbox row of its workspace, plus an entry in the platform's delivery
// queue. A dispatcher on the leader delivers due rows after commit, at least
// once, with retries and backoff; the row's ID (derived from the command's
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

func kOutbox(id string) storage.Key           { return storage.K("outbox", id) }
func sysOutboxQueue() storage.Key             { return storage.K("outq") }
func sysOutboxEntry(t, id string) storage.Key { return storage.K("outq", t, id) }

// maxDeliveryAttempts bounds retries: with backoff doubling from 30 s up to
// an hour, the last attempt is about a day after the first.
const maxDeliveryAttempts = 30

// mailEnabled reports whether mail can be sent at all.
func (s *Service) mailEnabled() bool { return s.mailer != nil }

// enqueueMail adds a rendered mail to ch's outbox. It does nothing when no
// mailer is configured (the callers then hand links over another way).
func (s *Service) enqueueMail(ch *change, tmpl string, to string, data mailData) error {
	if !s.mailEnabled() {
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
	ch.op(storage.Op{Type: storage.OpPut, Space: storage.SpaceSys, Key: sysOutboxEntry(ch.cmd.Tenant, id), Version: 1})
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

// DeliverOutbox sends every due outbox row once. Run it on the leader only;
// it is safe to run again at any time (a row is removed only after its
// delivery, under a precondition on its version).
func (s *Service) DeliverOutbox(ctx context.Context) (DeliveryReport, error) {
	var rep DeliveryReport
	if !s.mailEnabled() {
		return rep, nil
	}
	_, sys := s.sys()
	type due struct{ tenant, id string }
	var queue []due
	if err := sys.Scan(sysOutboxQueue(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		parts, err := k.Parts()
		if err != nil || len(parts) != 3 {
			return nil
		}
		queue = append(queue, due{string(parts[1]), string(parts[2])})
		return nil
	}); err != nil {
		return rep, err
	}
	for _, d := range queue {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		log, v := s.tenant(d.tenant)
		row, rec, err := getRecord[outboxRecord](v, kOutbox(d.id))
		if errors.Is(err, storage.ErrNotFound) {
			// The workspace or the row is gone: drop the queue entry.
			_, err = s.commit(ctx, s.router.Platform().Log, func() (*change, error) {
				ch := s.newChange("", "outbox.drop", "system")
				ch.delSys(sysOutboxEntry(d.tenant, d.id))
				return ch, nil
			})
			if err != nil {
				return rep, err
			}
			continue
		}
		if err != nil {
			return rep, err
		}
		now := s.now()
		if row.NextAt > now.UnixMilli() {
			continue
		}
		sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sendErr := s.mailer.Send(sendCtx, row.Mail)
		cancel()
		ch := s.newChange(d.tenant, "outbox.delivered", "system")
		ch.expect(kOutbox(d.id), rec.Version)
		switch {
		case sendErr == nil:
			ch.del(kOutbox(d.id))
			ch.delSys(sysOutboxEntry(d.tenant, d.id))
			rep.Sent++
		case row.Attempts+1 >= maxDeliveryAttempts:
			row.Attempts++
			row.Status, row.LastError = "failed", sendErr.Error()
			ch.put(kOutbox(d.id), row, rec.Version+1)
			ch.delSys(sysOutboxEntry(d.tenant, d.id))
			rep.Failed++
			s.log.Error("mail delivery failed for good", "workspace", d.tenant, "outbox", d.id, "err", sendErr)
		default:
			row.Attempts++
			row.LastError = sendErr.Error()
			row.NextAt = now.Add(backoff(row.Attempts)).UnixMilli()
			ch.cmd.Kind = "outbox.retry"
			ch.put(kOutbox(d.id), row, rec.Version+1)
			rep.Retried++
			s.log.Warn("mail delivery failed; will retry", "workspace", d.tenant, "outbox", d.id, "attempt", row.Attempts, "err", sendErr)
		}
		res, err := log.Propose(ctx, &ch.cmd)
		if err != nil {
			return rep, fmt.Errorf("engine: record delivery: %w", err)
		}
		if res.Err != nil && !errors.Is(res.Err, storage.ErrConflict) {
			return rep, fmt.Errorf("engine: record delivery: %w", res.Err)
		}
	}
	return rep, nil
}

// backoff doubles from 30 s up to an hour.
func backoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}
