package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
)

var smsCode = notify.Message{Channel: notify.SMS, To: "+33612345678", Text: "mandated : votre code est 482913 (valable 5 min).", Language: "fr"}

// verifySignature re-implements the check a gateway does, from the
// documented recipe only (docs/notifications.md).
func verifySignature(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := h.Get("webhook-signature"); got != want {
		t.Errorf("webhook-signature = %q, want %q", got, want)
	}
}

func TestWebhookDeliversSignedJSON(t *testing.T) {
	srv := notifytest.StartWebhook(t)
	cfg := srv.Config()
	now := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	n, err := notify.NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Send(context.Background(), smsCode); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, "+33612345678")
	verifySignature(t, srv.Secret(), got.Header, got.Body)
	if !got.Verified {
		t.Error("notifytest did not verify the signature")
	}
	if got.Method != http.MethodPost || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s with Content-Type %q", got.Method, got.Header.Get("Content-Type"))
	}
	if ts := got.Header.Get("webhook-timestamp"); ts != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q", ts)
	}
	var body map[string]string
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatal(err)
	}
	id := got.Header.Get("webhook-id")
	if !strings.HasPrefix(id, "msg_") || body["id"] != id {
		t.Errorf("webhook-id %q, body id %q", id, body["id"])
	}
	if body["to"] != smsCode.To || body["text"] != smsCode.Text || body["language"] != "fr" || len(body) != 4 {
		t.Errorf("body = %v", body)
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int
		wantCalls int
		wantErr   bool
	}{
		{"503 then delivered", []int{503, 503}, 3, false},
		{"429 then delivered", []int{429}, 2, false},
		{"400 is not retried", []int{400}, 1, true},
		{"401 is not retried", []int{401}, 1, true},
		{"redirect is not followed", []int{302}, 1, true},
		{"gives up after the attempts", []int{500, 502, 503, 504, 503}, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := notifytest.StartWebhook(t)
			srv.Respond(tt.statuses...)
			n := notifytest.WebhookNotifier(t, srv)
			err := n.Send(context.Background(), smsCode)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			calls := srv.Calls()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d calls, want %d", len(calls), tt.wantCalls)
			}
			// Every attempt carries the same id and a valid signature.
			for _, c := range calls {
				verifySignature(t, srv.Secret(), c.Header, c.Body)
				if c.Payload.ID != calls[0].Payload.ID {
					t.Errorf("retry changed the id: %q then %q", calls[0].Payload.ID, c.Payload.ID)
				}
			}
		})
	}
}

func TestWebhookRetriesNetworkErrors(t *testing.T) {
	// A port where nothing listens: connection refused, retried, then an error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	n, err := notify.NewWebhook(notify.WebhookConfig{
		URL: "http://" + addr + "/sms?token=abc", Secret: notifytest.StartWebhook(t).Secret(),
		Attempts: 3, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Send(context.Background(), smsCode)
	if err == nil {
		t.Fatal("delivered to nowhere")
	}
	if got := strings.Count(logs.String(), "SMS webhook attempt failed"); got != 3 {
		t.Errorf("%d failed attempts logged, want 3:\n%s", got, logs.String())
	}
	for _, secret := range []string{"482913", "token=abc", smsCode.To} {
		if strings.Contains(logs.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("log or error shows %q: %v\n%s", secret, err, logs.String())
		}
	}
}

func TestWebhookStopsAtTheContextDeadline(t *testing.T) {
	srv := notifytest.StartWebhook(t)
	srv.Respond(503, 503, 503)
	cfg := srv.Config()
	cfg.Backoff = time.Hour // longer than the deadline: no retry is attempted
	n, err := notify.NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Send(ctx, smsCode); err == nil {
		t.Fatal("delivered")
	}
	if got := len(srv.Calls()); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
}

func TestWebhookTimesOut(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	n, err := notify.NewWebhook(notify.WebhookConfig{URL: slow.URL, Secret: notifytest.StartWebhook(t).Secret(), Timeout: 50 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Send(context.Background(), smsCode); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
}

func TestWebhookRefusesBadMessages(t *testing.T) {
	srv := notifytest.StartWebhook(t)
	n := notifytest.WebhookNotifier(t, srv)
	for _, m := range []notify.Message{
		{Channel: notify.Email, To: "a@example.org", Text: "x"},
		{Channel: notify.SMS, To: "0612345678", Text: "x"},
		{Channel: notify.SMS, To: "+33 6 12 34 56 78", Text: "x"},
		{Channel: notify.SMS, To: "", Text: "x"},
	} {
		if err := n.Send(context.Background(), m); err == nil {
			t.Errorf("sent %+v", m)
		}
	}
	if got := len(srv.Calls()); got != 0 {
		t.Errorf("%d calls", got)
	}
}

func TestNewWebhookConfig(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name, url, secret, wantErr string
	}{
		{"https", "https://sms.example.org/send", secret, ""},
		{"http to loopback", "http://127.0.0.1:9000/send", secret, ""},
		{"http to localhost", "http://localhost:9000/send", secret, ""},
		{"http to IPv6 loopback", "http://[::1]:9000/send", secret, ""},
		{"http to a remote host", "http://sms.example.org/send", secret, "only allowed to a loopback"},
		{"http to a lookalike", "http://127.0.0.1.example.org/send", secret, "only allowed to a loopback"},
		{"other scheme", "ftp://sms.example.org/", secret, "scheme"},
		{"relative", "/send", secret, "absolute"},
		{"user info", "https://u:p@sms.example.org/", secret, "user info"},
		{"no secret", "https://sms.example.org/send", "", "whsec_"},
		{"secret without prefix", "https://sms.example.org/send", strings.TrimPrefix(secret, "whsec_"), "whsec_"},
		{"secret not base64", "https://sms.example.org/send", "whsec_not base64!", "base64"},
		{"secret too short", "https://sms.example.org/send", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), "24 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notify.NewWebhook(notify.WebhookConfig{URL: tt.url, Secret: tt.secret})
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
			if err != nil && tt.secret != "" && strings.Contains(err.Error(), strings.TrimPrefix(tt.secret, "whsec_")) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// TestSignWebhookKnownAnswer pins the signature to the worked example in
// docs/notifications.md.
func TestSignWebhookKnownAnswer(t *testing.T) {
	key, err := notify.ParseWebhookSecret(docSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := notify.SignWebhook(key, docID, docTimestamp, []byte(docBody))
	if got != docSignature {
		t.Errorf("signature = %s, want %s (update docs/notifications.md if the example changed)", got, docSignature)
	}
}

// The worked example of docs/notifications.md.
const (
	docSecret    = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
	docID        = "msg_2c5a3f0e-8d1b-4b7a-9a61-3e0f6b1c2d4e"
	docTimestamp = "1773480413"
	docBody      = `{"id":"msg_2c5a3f0e-8d1b-4b7a-9a61-3e0f6b1c2d4e","to":"+33612345678","text":"mandated : votre code est 482913 (valable 5 min).","language":"fr"}`
	docSignature = "BV/TygYtSSo42BT8RzPYx2auPf5N4U0gRl69Wq1xwzs="
)

func TestWebhookPayloadMatchesTheDocs(t *testing.T) {
	b, err := json.Marshal(notify.WebhookPayload{ID: docID, To: smsCode.To, Text: smsCode.Text, Language: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != docBody {
		t.Errorf("body = %s\nwant   %s", b, docBody)
	}
}
