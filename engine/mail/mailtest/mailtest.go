// Package mailtest runs a real SMTP server in-process (emersion/go-smtp) on
// a loopback port and keeps what it receives, so tests read the mail the
// real client delivered.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one delivered message.
type Mail struct {
	From      string
	To        []string
	MessageID string
	Subject   string
	Text      string
	HTML      string
	Raw       []byte
}

// Server is the catcher.
type Server struct {
	Host string
	Port int

	mu   sync.Mutex
	mail []Mail
	fail int // the next fail deliveries are refused (a 451)
	srv  *smtp.Server
}

// Start runs a catcher until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// FailNext makes the next n deliveries fail with a temporary error.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.fail = n
	s.mu.Unlock()
}

// Mail returns what was delivered so far.
func (s *Server) Mail() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

// To returns the messages delivered to addr.
func (s *Server) To(addr string) []Mail {
	var out []Mail
	for _, m := range s.Mail() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}

// WaitFor polls until a message to addr arrives or the deadline passes.
func (s *Server) WaitFor(t testing.TB, addr string, d time.Duration) Mail {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if ms := s.To(addr); len(ms) > 0 {
			return ms[len(ms)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s within %s", addr, d)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

type session struct {
	s    *Server
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	if x.s.fail > 0 {
		x.s.fail--
		x.s.mu.Unlock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	x.s.mu.Unlock()
	m := Mail{From: x.from, To: x.to, Raw: raw}
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		dec := new(mime.WordDecoder)
		m.Subject, _ = dec.DecodeHeader(msg.Header.Get("Subject"))
		m.MessageID = msg.Header.Get("Message-Id")
		m.Text, m.HTML = bodies(msg)
	}
	x.s.mu.Lock()
	x.s.mail = append(x.s.mail, m)
	x.s.mu.Unlock()
	return nil
}

// bodies extracts the text and HTML parts of a message.
func bodies(msg *mail.Message) (text, html string) {
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		b, _ := io.ReadAll(msg.Body)
		return string(b), ""
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(msg.Body)
		return decodeQP(msg.Header.Get("Content-Transfer-Encoding"), b), ""
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return text, html
		}
		b, _ := io.ReadAll(p)
		body := decodeQP(p.Header.Get("Content-Transfer-Encoding"), b)
		switch {
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain"):
			text = body
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/html"):
			html = body
		}
	}
}

// decodeQP undoes a part's transfer encoding (multipart already undoes
// quoted-printable for parts; top-level bodies and base64 are done here).
func decodeQP(enc string, b []byte) string {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err == nil {
			return string(out)
		}
	case "base64":
		out, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), ""))
		if err == nil {
			return string(out)
		}
	}
	return string(b)
}
