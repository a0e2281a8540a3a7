// Package mail sends the engine's outbox mail over SMTP. It implements
// engine.Mailer; the engine decides what to send and when, this package only
// speaks SMTP (STARTTLS, implicit TLS or plain, with optional auth).
package mail

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/teamflow/teamflow/engine"
	gomail "github.com/wneessen/go-mail"
)

// Config says how to reach the SMTP server.
type Config struct {
	Host     string
	Port     int    // default 587 (25 with TLS "none", 465 with "tls")
	Security string // "starttls" (default), "tls" (implicit, port 465) or "none"
	Username string
	Password string
	From     string // e.g. "TeamFlow <teamflow@example.com>"
	Timeout  time.Duration
	// InsecureSkipVerify accepts any server certificate (test servers only).
	InsecureSkipVerify bool
}

// SMTP sends one message per Send over a fresh connection.
type SMTP struct{ cfg Config }

var _ engine.Mailer = (*SMTP)(nil)

// New checks cfg and returns the mailer.
func New(cfg Config) (*SMTP, error) {
	if cfg.Host == "" || cfg.From == "" {
		return nil, fmt.Errorf("mail: host and from are required")
	}
	if cfg.Security == "" {
		cfg.Security = "starttls"
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[cfg.Security]
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	switch cfg.Security {
	case "starttls", "tls", "none":
	default:
		return nil, fmt.Errorf("mail: security is starttls, tls or none, not %q", cfg.Security)
	}
	return &SMTP{cfg: cfg}, nil
}

// Send delivers m. The Message-ID comes from the outbox row, so a message
// sent again after a crash carries the same ID and a receiver can drop it.
func (s *SMTP) Send(ctx context.Context, m engine.Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("mail: to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(strings.Trim(m.ID, "<>")) // go-mail adds the angle brackets
	msg.SetDateWithValue(m.Date)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	opts := []gomail.Option{gomail.WithPort(s.cfg.Port), gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: s.cfg.Host, InsecureSkipVerify: s.cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12})}
	switch s.cfg.Security {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("mail: client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail: send to %s: %w", s.cfg.Host, err)
	}
	return nil
}
