package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// WebhookPayload is the JSON body the SMS webhook receives (see
// docs/notifications.md). Fields are only ever added, never renamed.
type WebhookPayload struct {
	ID       string `json:"id"`       // unique per message; also the webhook-id header; the same on every retry
	To       string `json:"to"`       // E.164 phone number, e.g. "+33612345678"
	Text     string `json:"text"`     // the SMS text, in the person's language
	Language string `json:"language"` // "fr" or "en"
}

// Standard Webhooks header names (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// WebhookConfig configures the SMS webhook notifier.
type WebhookConfig struct {
	// URL receives the POST. https, or http to a loopback host only.
	URL string
	// Secret signs each call: "whsec_" followed by the base64 of 24 to 64
	// random bytes, as in the Standard Webhooks specification.
	Secret string
	// Timeout bounds each attempt; default 10s.
	Timeout time.Duration
	// Attempts is how many times a message is tried in all (5xx, 408, 429
	// and network errors are retried); default 4.
	Attempts int
	// Backoff is the wait before the first retry, doubled after each; default 1s.
	// Retries stop early when the context's deadline would pass.
	Backoff time.Duration
	// Client sends the requests; default a client requiring TLS 1.2.
	// Redirects are never followed.
	Client *http.Client
	// Logger receives a warning per failed attempt (never the text or the
	// secret); default slog.Default().
	Logger *slog.Logger
	// Now is the clock for webhook-timestamp; default time.Now.
	Now func() time.Time
}

// Webhook sends SMS messages by POSTing signed JSON to a gateway that the
// operator runs or rents (docs/notifications.md documents the contract).
type Webhook struct {
	cfg    WebhookConfig
	url    *url.URL
	key    []byte
	client *http.Client
}

// ParseWebhookSecret returns the signing key of a "whsec_<base64>" secret.
func ParseWebhookSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(secret), "whsec_")
	if !ok {
		return nil, errors.New(`SMS webhook secret must look like "whsec_<base64 of 24 to 64 random bytes>" (e.g. echo "whsec_$(openssl rand -base64 32)")`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("SMS webhook secret: the part after whsec_ is not standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("SMS webhook secret: %d bytes, want 24 to 64", len(key))
	}
	return key, nil
}

// NewWebhook checks the configuration and returns the notifier.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, errors.New("SMS webhook URL must be an absolute https URL without user info or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("SMS webhook URL: http is only allowed to a loopback host, not %q; use https", u.Hostname())
		}
	default:
		return nil, fmt.Errorf("SMS webhook URL: scheme %q, want https", u.Scheme)
	}
	key, err := ParseWebhookSecret(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: cfg.Timeout,
			MaxIdleConns:        4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	// Never follow redirects: the signed body must go where it was configured to.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Webhook{cfg: cfg, url: u, key: key, client: &c}, nil
}

// Describe says where SMS go, without the secret, for the start-up log.
func (w *Webhook) Describe() string {
	return "SMS webhook " + w.url.Scheme + "://" + w.url.Host + w.url.EscapedPath()
}

// Send POSTs m, an SMS message, to the webhook, retrying on 5xx, 408, 429
// and network errors while the context allows. It returns nil on a 2xx.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	if m.Channel != SMS {
		return fmt.Errorf("SMS webhook: %w: %q", ErrNoChannel, m.Channel)
	}
	if !isE164(m.To) {
		return fmt.Errorf("SMS webhook: the recipient is not an E.164 phone number: %w", ErrBadRecipient)
	}
	id := "msg_" + uuid.NewString()
	body, err := json.Marshal(WebhookPayload{ID: id, To: m.To, Text: m.Text, Language: m.Language})
	if err != nil {
		return fmt.Errorf("SMS webhook: encode: %w", err)
	}
	wait := w.cfg.Backoff
	var last error
	for attempt := 1; ; attempt++ {
		retry, err := w.attempt(ctx, id, body)
		if err == nil {
			return nil
		}
		last = err
		w.cfg.Logger.WarnContext(ctx, "SMS webhook attempt failed", "id", id, "attempt", attempt, "err", err)
		if !retry || attempt >= w.cfg.Attempts {
			break
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("SMS webhook: %w (last attempt: %w)", ctx.Err(), last)
		case <-t.C:
		}
		wait *= 2
	}
	return fmt.Errorf("SMS webhook: not delivered: %w", last)
}

// attempt makes one call; retry says whether another could succeed.
func (w *Webhook) attempt(ctx context.Context, id string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("request: %w", err)
	}
	ts := strconv.FormatInt(w.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mandated-notify/1")
	req.Header.Set(HeaderWebhookID, id)
	req.Header.Set(HeaderWebhookTimestamp, ts)
	req.Header.Set(HeaderWebhookSignature, "v1,"+SignWebhook(w.key, id, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("post: %w", redactURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("gateway answered %s", resp.Status)
	default:
		return false, fmt.Errorf("gateway refused the message: %s", resp.Status)
	}
}

// SignWebhook is the Standard Webhooks signature: the base64 of
// HMAC-SHA256(key, id + "." + timestamp + "." + body).
func SignWebhook(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// redactURL drops the URL from a *url.Error (its query may carry a token).
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// isE164 reports whether s is "+" followed by 7 to 15 digits, not starting with 0.
func isE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
