package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
)

// frenchCode is a message with non-ASCII text in subject and body, long
// lines and an "=" sign, so quoted-printable and encoded words are exercised.
var frenchCode = notify.Message{
	Channel:  notify.Email,
	To:       "Camille Dupont <camille@example.org>",
	Subject:  "Votre code de connexion à mandated",
	Text:     "Bonjour,\n\nVotre code à usage unique est : 482913. Il expire dans 5 minutes. Ne le communiquez à personne, même pas à la personne qui vous accompagne = jamais.\n",
	Language: "fr",
}

func TestSMTPDelivers(t *testing.T) {
	fixed := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	tests := []struct {
		name     string
		opts     []notifytest.SMTPOption
		useCA    bool // trust the test certificate through a CA file
		wantTLS  bool
		wantUser string
	}{
		{name: "plain to loopback", opts: nil},
		{name: "starttls", opts: []notifytest.SMTPOption{notifytest.WithSTARTTLS()}, wantTLS: true},
		{name: "starttls with CA file and password", opts: []notifytest.SMTPOption{notifytest.WithSTARTTLS(), notifytest.WithAuth("relay-user", "s3cret pass")}, useCA: true, wantTLS: true, wantUser: "relay-user"},
		{name: "implicit tls with password", opts: []notifytest.SMTPOption{notifytest.WithImplicitTLS(), notifytest.WithAuth("relay-user", "s3cret")}, wantTLS: true, wantUser: "relay-user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := notifytest.StartSMTP(t, tt.opts...)
			cfg := srv.Config()
			cfg.From = "no-reply@mediation.example.fr"
			cfg.Now = func() time.Time { return fixed }
			if tt.useCA {
				cfg.RootCAs = nil
				cfg.CAFile = srv.CAFile(t)
			}
			n, err := notify.NewSMTP(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Send(context.Background(), frenchCode); err != nil {
				t.Fatal(err)
			}
			got := srv.WaitFor(t, "camille@example.org")
			if got.Subject != frenchCode.Subject {
				t.Errorf("subject = %q, want %q", got.Subject, frenchCode.Subject)
			}
			if strings.TrimRight(got.Text, "\n") != strings.TrimRight(frenchCode.Text, "\n") {
				t.Errorf("text = %q, want %q", got.Text, frenchCode.Text)
			}
			if got.TLS != tt.wantTLS || got.AuthUser != tt.wantUser {
				t.Errorf("TLS, user = %v, %q; want %v, %q", got.TLS, got.AuthUser, tt.wantTLS, tt.wantUser)
			}
			if got.From != "no-reply@mediation.example.fr" {
				t.Errorf("envelope from = %q", got.From)
			}
			h := got.Header
			if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "mandated" || from[0].Address != "no-reply@mediation.example.fr" {
				t.Errorf("From = %q (%v)", h.Get("From"), err)
			}
			if date, err := h.Date(); err != nil || !date.Equal(fixed) {
				t.Errorf("Date = %q (%v)", h.Get("Date"), err)
			}
			if id := h.Get("Message-Id"); !strings.HasSuffix(id, "@mediation.example.fr>") || len(id) < 30 {
				t.Errorf("Message-ID = %q", id)
			}
			if v := h.Get("Auto-Submitted"); v != "auto-generated" {
				t.Errorf("Auto-Submitted = %q", v)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
				t.Errorf("Content-Type = %q", ct)
			}
			if n := len(srv.Messages()); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
		})
	}
}

func TestSMTPRefusesWhatIsNotSafe(t *testing.T) {
	plain := notifytest.StartSMTP(t)
	starttls := notifytest.StartSMTP(t, notifytest.WithSTARTTLS())
	authed := notifytest.StartSMTP(t, notifytest.WithSTARTTLS(), notifytest.WithAuth("u", "p"))
	tests := []struct {
		name string
		cfg  notify.SMTPConfig
	}{
		// The server offers no STARTTLS: mandatory STARTTLS must not fall back to plain text.
		{"starttls required but not offered", func() notify.SMTPConfig {
			c := plain.Config()
			c.TLS = notify.TLSStartTLS
			return c
		}()},
		// Self-signed certificate not trusted.
		{"untrusted certificate", func() notify.SMTPConfig { c := starttls.Config(); c.RootCAs = nil; return c }()},
		// Certificate for 127.0.0.1/localhost, not for this name.
		{"wrong server name", func() notify.SMTPConfig { c := starttls.Config(); c.ServerName = "mail.example.org"; return c }()},
		{"wrong password", func() notify.SMTPConfig { c := authed.Config(); c.Password = "wrong"; return c }()},
		{"missing password", func() notify.SMTPConfig { c := authed.Config(); c.Username, c.Password = "", ""; return c }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := notify.NewSMTP(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = n.Send(context.Background(), frenchCode)
			if err == nil {
				t.Fatal("sent")
			}
			t.Logf("refused: %v", err)
		})
	}
	for _, srv := range []*notifytest.SMTPServer{plain, starttls, authed} {
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("%s received %d messages", srv.Addr(), n)
		}
	}
}

func TestNewSMTPConfig(t *testing.T) {
	ok := notify.SMTPConfig{Host: "smtp.example.org", From: "no-reply@example.org"}
	tests := []struct {
		name    string
		change  func(*notify.SMTPConfig)
		wantErr string
	}{
		{"defaults", func(*notify.SMTPConfig) {}, ""},
		{"bad tls mode", func(c *notify.SMTPConfig) { c.TLS = "ssl" }, "TLS mode"},
		{"none to a remote host", func(c *notify.SMTPConfig) { c.TLS = notify.TLSNone }, "loopback"},
		{"none to localhost", func(c *notify.SMTPConfig) { c.TLS, c.Host = notify.TLSNone, "localhost" }, ""},
		{"none with a password", func(c *notify.SMTPConfig) {
			c.TLS, c.Host, c.Username, c.Password = notify.TLSNone, "127.0.0.1", "u", "p"
		}, "only sent over TLS"},
		{"user without password", func(c *notify.SMTPConfig) { c.Username = "u" }, "both"},
		{"no host", func(c *notify.SMTPConfig) { c.Host = "" }, "host"},
		{"bad from", func(c *notify.SMTPConfig) { c.From = "not an address" }, "sender"},
		{"bad port", func(c *notify.SMTPConfig) { c.Port = 70000 }, "port"},
		{"missing CA file", func(c *notify.SMTPConfig) { c.CAFile = "/nonexistent/ca.pem" }, "CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			_, err := notify.NewSMTP(c)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestSMTPRejectsOtherChannelsAndBadAddresses(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	n := notifytest.SMTPNotifier(t, srv)
	if err := n.Send(context.Background(), notify.Message{Channel: notify.SMS, To: "+33612345678", Text: "x"}); err == nil {
		t.Error("sent an SMS by email")
	}
	for _, to := range []string{"", "not an address", "a@b.example\r\nBcc: evil@example.org"} {
		if err := n.Send(context.Background(), notify.Message{Channel: notify.Email, To: to, Subject: "s", Text: "x"}); err == nil {
			t.Errorf("sent to %q", to)
		}
	}
	// Header injection through the subject is neutralised by encoding.
	if err := n.Send(context.Background(), notify.Message{Channel: notify.Email, To: "a@example.org", Subject: "hi\r\nBcc: evil@example.org", Text: "x"}); err == nil {
		got := srv.WaitFor(t, "a@example.org")
		if len(got.To) != 1 || got.Header.Get("Bcc") != "" {
			t.Errorf("subject injected a header: to=%v bcc=%q", got.To, got.Header.Get("Bcc"))
		}
	}
}
