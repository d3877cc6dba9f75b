package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
)

// openNotify parses args as the notify flags and opens the notifier,
// returning what it logged.
func openNotify(t *testing.T, args ...string) (notify.Notifier, string, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c notifyConfig
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := c.open(slog.New(slog.NewTextHandler(&buf, nil)))
	return n, buf.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNotifyDefaultsToTheLog(t *testing.T) {
	n, startLog, err := openNotify(t)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(startLog, "NOT delivered") || !strings.Contains(startLog, "level=WARN") {
		t.Errorf("start log = %s", startLog)
	}
	if _, ok := n.(notify.Router)[notify.Email].(*notify.Log); !ok {
		t.Errorf("email goes to %T", n.(notify.Router)[notify.Email])
	}
	if _, ok := n.(notify.Router)[notify.SMS].(*notify.Log); !ok {
		t.Errorf("sms goes to %T", n.(notify.Router)[notify.SMS])
	}
}

func TestNotifyDeliversWhenConfigured(t *testing.T) {
	const password = "relay pass-word"
	mail := notifytest.StartSMTP(t, notifytest.WithSTARTTLS(), notifytest.WithAuth("relay", password))
	sms := notifytest.StartWebhook(t)
	n, startLog, err := openNotify(t,
		"--smtp-host", mail.Host(), "--smtp-port", strconv.Itoa(mail.Port()),
		"--smtp-username", "relay", "--smtp-password-file", writeFile(t, "pw", password+"\n"),
		"--smtp-from", "Médiation numérique <no-reply@example.org>",
		"--smtp-tls", "starttls", "--smtp-ca-file", mail.CAFile(t),
		"--sms-webhook-url", sms.URL()+"/sms", "--sms-webhook-secret-file", writeFile(t, "secret", sms.Secret()+"\n"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{password, sms.Secret(), strings.TrimPrefix(sms.Secret(), "whsec_")} {
		if strings.Contains(startLog, secret) {
			t.Errorf("start log shows a secret: %s", startLog)
		}
	}
	if !strings.Contains(startLog, "level=INFO") || !strings.Contains(startLog, "SMTP "+mail.Addr()) || strings.Contains(startLog, "NOT delivered") {
		t.Errorf("start log = %s", startLog)
	}
	ctx := context.Background()
	if err := n.Send(ctx, notify.Message{Channel: notify.Email, To: "camille@example.org", Subject: "Code", Text: "123456", Language: "fr"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(ctx, notify.Message{Channel: notify.SMS, To: "+33612345678", Text: "123456", Language: "fr"}); err != nil {
		t.Fatal(err)
	}
	got := mail.WaitFor(t, "camille@example.org")
	if got.AuthUser != "relay" || !got.TLS || strings.TrimSpace(got.Text) != "123456" || !strings.Contains(got.Header.Get("From"), "no-reply@example.org") {
		t.Errorf("mail: user %q, TLS %v, text %q, from %q", got.AuthUser, got.TLS, got.Text, got.Header.Get("From"))
	}
	if call := sms.WaitFor(t, "+33612345678"); !call.Verified || call.Payload.Text != "123456" {
		t.Errorf("sms: verified %v, text %q", call.Verified, call.Payload.Text)
	}
}

func TestNotifyRefusesBadSettings(t *testing.T) {
	secretFile := writeFile(t, "secret", notifytest.StartWebhook(t).Secret())
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"bad TLS mode", []string{"--smtp-host", "smtp.example.org", "--smtp-from", "a@example.org", "--smtp-tls", "ssl"}, "--smtp-tls"},
		{"bad TLS mode without host", []string{"--smtp-tls", "yes"}, "--smtp-tls"},
		{"clear text to a remote host", []string{"--smtp-host", "smtp.example.org", "--smtp-from", "a@example.org", "--smtp-tls", "none"}, "loopback"},
		{"no sender", []string{"--smtp-host", "smtp.example.org"}, "--smtp-from"},
		{"settings without host", []string{"--smtp-from", "a@example.org"}, "--smtp-host"},
		{"bad port", []string{"--smtp-host", "smtp.example.org", "--smtp-from", "a@example.org", "--smtp-port", "submission"}, "--smtp-port"},
		{"password and file", []string{"--smtp-host", "smtp.example.org", "--smtp-from", "a@example.org", "--smtp-username", "u", "--smtp-password", "p", "--smtp-password-file", secretFile}, "not both"},
		{"missing password file", []string{"--smtp-host", "smtp.example.org", "--smtp-from", "a@example.org", "--smtp-username", "u", "--smtp-password-file", "/nonexistent"}, "--smtp-password-file"},
		{"http webhook to a remote host", []string{"--sms-webhook-url", "http://sms.example.org/send", "--sms-webhook-secret-file", secretFile}, "https"},
		{"webhook without secret", []string{"--sms-webhook-url", "https://sms.example.org/send"}, "whsec_"},
		{"secret without webhook", []string{"--sms-webhook-secret-file", secretFile}, "--sms-webhook-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := openNotify(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
