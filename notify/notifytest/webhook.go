package notifytest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/notify"
)

// WebhookCall is one request the webhook server received.
type WebhookCall struct {
	Method  string
	Header  http.Header
	Body    []byte
	Payload notify.WebhookPayload // Body decoded (zero when it is not JSON)
	// Verified: the webhook-signature header holds a valid Standard
	// Webhooks signature of this body under the server's secret (checked
	// here independently of package notify).
	Verified bool
	Status   int // what the server answered
}

// WebhookServer is an HTTP server standing for an SMS gateway: it records
// every call and answers 204, or the statuses queued with Respond.
type WebhookServer struct {
	srv    *httptest.Server
	secret string
	key    []byte

	mu      sync.Mutex
	calls   []WebhookCall
	queue   []int
	arrived chan struct{}
}

// StartWebhook starts the server on 127.0.0.1 on a free port (plain http,
// which the notifier allows to loopback only), with a fresh secret. It stops
// when the test ends.
func StartWebhook(t testing.TB) *WebhookServer {
	t.Helper()
	w := &WebhookServer{arrived: make(chan struct{}), key: make([]byte, 32)}
	if _, err := rand.Read(w.key); err != nil {
		t.Fatal(err)
	}
	w.secret = "whsec_" + base64.StdEncoding.EncodeToString(w.key)
	w.srv = httptest.NewServer(http.HandlerFunc(w.handle))
	t.Cleanup(w.srv.Close)
	return w
}

// URL is the webhook URL.
func (w *WebhookServer) URL() string { return w.srv.URL }

// Secret is the shared signing secret ("whsec_...").
func (w *WebhookServer) Secret() string { return w.secret }

// Config is a notify.WebhookConfig that reaches this server, with short
// back-off so that retry tests stay quick.
func (w *WebhookServer) Config() notify.WebhookConfig {
	return notify.WebhookConfig{URL: w.URL(), Secret: w.secret, Backoff: 10 * time.Millisecond, Timeout: WaitTimeout}
}

// Respond queues the statuses of the next calls, in order; once they are
// used up, calls are answered 204 No Content.
func (w *WebhookServer) Respond(statuses ...int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = append(w.queue, statuses...)
}

// Calls returns a copy of every call so far, oldest first, including the
// ones answered with an error status.
func (w *WebhookServer) Calls() []WebhookCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebhookCall(nil), w.calls...)
}

// WaitFor returns the first call to phone number to that was answered with
// a 2xx, waiting up to WaitTimeout; it fails the test if none comes.
func (w *WebhookServer) WaitFor(t testing.TB, to string) WebhookCall {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for _, c := range w.calls {
			if c.Payload.To == to && c.Status/100 == 2 {
				w.mu.Unlock()
				return c
			}
		}
		arrived := w.arrived
		w.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("notifytest: no webhook call to %s within %s (%d other calls)", to, WaitTimeout, len(w.Calls()))
			return WebhookCall{}
		}
	}
}

// WebhookNotifier is a notify.Webhook notifier that sends to w.
func WebhookNotifier(t testing.TB, w *WebhookServer) notify.Notifier {
	t.Helper()
	n, err := notify.NewWebhook(w.Config())
	if err != nil {
		t.Fatalf("notifytest: webhook notifier: %v", err)
	}
	return n
}

func (w *WebhookServer) handle(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	c := WebhookCall{Method: r.Method, Header: r.Header.Clone(), Body: body}
	_ = json.Unmarshal(body, &c.Payload)
	c.Verified = w.verify(r.Header, body)
	w.mu.Lock()
	c.Status = http.StatusNoContent
	if len(w.queue) > 0 {
		c.Status, w.queue = w.queue[0], w.queue[1:]
	}
	w.calls = append(w.calls, c)
	close(w.arrived)
	w.arrived = make(chan struct{})
	w.mu.Unlock()
	rw.WriteHeader(c.Status)
}

// verify checks the Standard Webhooks signature: one of the space-separated
// "v1,<base64>" values must be the HMAC-SHA256 of "id.timestamp.body".
func (w *WebhookServer) verify(h http.Header, body []byte) bool {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return false
	}
	mac := hmac.New(sha256.New, w.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		b64, ok := strings.CutPrefix(sig, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
