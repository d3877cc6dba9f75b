package browser_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"rsc.io/qr"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/store/storetest"
)

// The end-to-end test's harness: one server on SQLite as `mandated serve`
// wires it, browsed at http://localhost:<port>, a mail server that
// introspects the tokens, a colleague's mail client, tabs that live as
// long as the whole story, and plain HTTP calls for the OAuth2 clients
// that are not a browser.

// smallPhone is the phone: 360×640.
var smallPhone = viewport{360, 640, true}

// e2eGuard bounds each tab of the end-to-end test: a guard against a hung
// browser over a story of several minutes, not a timing assertion.
const e2eGuard = 6 * time.Minute

// onLocalhost makes the issuer http://localhost:<port>, so that every URL
// the server builds (the verification URI of the QR code, the tokens' iss)
// names the host the holder's passkey is bound to: browsers refuse
// passkeys on an IP address. It must come before withHolderMandates, whose
// authorization server takes the issuer from s.url.
func onLocalhost() serverOption {
	return func(s *server) {
		u, err := url.Parse(s.url)
		if err != nil {
			s.t.Fatal(err)
		}
		s.url = "http://localhost:" + u.Port()
	}
}

// mailServers are the OAuth2 clients of the story that are not a browser:
// the mail server (a resource server: client credentials, it introspects)
// and a colleague's mail client (device code and refresh, its tokens meant
// for the mail server).
type mailServers struct {
	issuer      string
	rsID        string
	rsSecret    string
	mailID      string
	mailSecret  string
	otherID     string // a client the tokens are not meant for
	otherSecret string
}

// withMailServers registers the clients, after withHolderMandates and
// before withConsole. The console's first-party client is registered here
// as EnsureConsoleClient would, plus the mail server as its audience:
// without an audience no resource server may introspect the console's
// tokens (the introspection visibility policy), and the binary offers no
// way to give it one yet: EnsureConsoleClient registers it with none.
func withMailServers(ms *mailServers, mf *holderMandatesFeature) serverOption {
	return func(s *server) {
		ctx := s.t.Context()
		ms.issuer = s.url
		rs, secret, err := mf.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Serveur mail",
			GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{mandate.ScopeAuditWrite}})
		if err != nil {
			s.t.Fatal(err)
		}
		ms.rsID, ms.rsSecret = rs.ID, secret
		other, secret, err := mf.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Autre service",
			GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{mandate.ScopeAuditWrite}})
		if err != nil {
			s.t.Fatal(err)
		}
		ms.otherID, ms.otherSecret = other.ID, secret
		mail, secret, err := mf.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Messagerie du collègue",
			GrantTypes: []string{authz.GrantTypeDeviceCode, authz.GrantRefreshToken},
			Scopes:     []string{mandate.ScopeMailRead, mandate.ScopeMailSend}, Audience: []string{rs.ID}})
		if err != nil {
			s.t.Fatal(err)
		}
		ms.mailID, ms.mailSecret = mail.ID, secret
		var scopes []string
		for _, sc := range mandate.Scopes() {
			if !sc.Service {
				scopes = append(scopes, sc.Name)
			}
		}
		console := &authz.Client{ID: authz.ConsoleClientID, Name: "Console des médiateurs",
			GrantTypes: []string{authz.GrantTypeDeviceCode}, Scopes: scopes, Audience: []string{rs.ID},
			AuthMethod: authz.AuthMethodNone, CreatedAt: s.clock.Now()}
		if err := console.Prepare(); err != nil {
			s.t.Fatal(err)
		}
		if err := s.store.CreateClient(ctx, console); err != nil {
			s.t.Fatal(err)
		}
	}
}

// oauthReply is a JSON answer of an OAuth2 endpoint.
type oauthReply struct {
	status int
	body   map[string]any
	raw    string
}

func (r oauthReply) str(k string) string { s, _ := r.body[k].(string); return s }

var e2eHTTP = &http.Client{Timeout: 20 * time.Second}

// post sends form to the issuer's path, authenticated with
// client_secret_basic (RFC 6749 §2.3.1: both parts form-encoded).
func (ms *mailServers) post(t *testing.T, path string, form url.Values, id, secret string) oauthReply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ms.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	res, err := e2eHTTP.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := oauthReply{status: res.StatusCode, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("POST %s answered %d, not JSON: %q", path, res.StatusCode, raw)
	}
	return r
}

// introspect is the mail server's RFC 7662 introspection of token.
func (ms *mailServers) introspect(t *testing.T, token string) oauthReply {
	t.Helper()
	r := ms.post(t, authz.PathIntrospect, url.Values{"token": {token}}, ms.rsID, ms.rsSecret)
	if r.status != http.StatusOK {
		t.Fatalf("introspection answered %d: %s", r.status, r.raw)
	}
	return r
}

// wantInactive checks the mail server is told nothing but active: false.
func (ms *mailServers) wantInactive(t *testing.T, what, token string) {
	t.Helper()
	if r := ms.introspect(t, token); r.body["active"] != false || len(r.body) != 1 {
		t.Errorf("%s: introspection says %s, want only {\"active\":false}", what, r.raw)
	}
}

// pollDevice is one RFC 8628 §3.4 token request of the colleague's client.
func (ms *mailServers) pollDevice(t *testing.T, deviceCode string) oauthReply {
	t.Helper()
	return ms.post(t, authz.PathToken, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {deviceCode}},
		ms.mailID, ms.mailSecret)
}

// refresh is a refresh token request of the colleague's client.
func (ms *mailServers) refresh(t *testing.T, refreshToken string) oauthReply {
	t.Helper()
	return ms.post(t, authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}},
		ms.mailID, ms.mailSecret)
}

// verifiedClaims checks token's ES256 signature against the issuer's
// published JWKS and its RFC 9068 type, and returns its claims.
func (ms *mailServers) verifiedClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("not an ES256 JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("%d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		t.Errorf("typ = %q, want at+jwt (RFC 9068)", typ)
	}
	res, err := e2eHTTP.Get(ms.issuer + authz.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 || !keys[0].IsPublic() {
		t.Fatalf("the JWKS has %d public keys with kid %q", len(keys), h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("the signature does not verify with the published key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// newLongTab is newTab with a guard long enough for the whole story.
func newLongTab(t *testing.T, vp viewport, lang string) *tab {
	t.Helper()
	return newTabWithin(t, vp, lang, e2eGuard)
}

// sibling opens another tab in b's browser context (its cookies: the same
// phone, signed in), as a holder opens a second link on their phone.
func (b *tab) sibling(lang string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	return startTab(b.t, ctx, b.vp, lang, e2eGuard)
}

// blockHeartbeats makes the tab's heartbeat requests fail as a lost
// network would (the page's other requests still go), or lets them
// through again.
func (b *tab) blockHeartbeats(block bool) {
	b.t.Helper()
	var patterns []*network.BlockPattern
	if block {
		patterns = []*network.BlockPattern{{URLPattern: "*://*:*/holder/mandates/*/heartbeat", Block: true}}
	}
	if _, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: patterns}); err != nil {
		b.t.Fatalf("block heartbeats (%v): %v", block, err)
	}
}

// followWallClock moves the server's clock along with the wall clock until
// stop is called. The console's script waits the RFC 8628 polling
// interval in real time while the server counts it on its own clock
// (slow_down): this keeps them in step while the console polls. No
// assertion depends on it.
func followWallClock(c *storetest.Clock) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				c.Advance(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// qrSays checks that the data: URL of a PNG QR code draws exactly the code
// of text, module by module (whatever its scale).
func qrSays(t *testing.T, dataURL, text string) bool {
	t.Helper()
	b64, ok := strings.CutPrefix(dataURL, "data:image/png;base64,")
	if !ok {
		t.Fatalf("the QR code is not a PNG data URL: %.40q", dataURL)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the QR code's PNG: %v", err)
	}
	want, err := qr.Encode(text, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	side := want.Size + 8 // a quiet zone of 4 modules around
	b := img.Bounds()
	if b.Dx() != b.Dy() || b.Dx()%side != 0 {
		return false
	}
	scale := b.Dx() / side
	for y := -4; y < want.Size+4; y++ {
		for x := -4; x < want.Size+4; x++ {
			r, _, _, _ := img.At(b.Min.X+(x+4)*scale+scale/2, b.Min.Y+(y+4)*scale+scale/2).RGBA()
			if (r < 0x8000) != want.Black(x, y) {
				return false
			}
		}
	}
	return true
}
