package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/authz/authztest"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// deviceRevoker forwards to the server, built after the mandate service
// (each needs the other).
type deviceRevoker struct{ srv *authz.Server }

func (r *deviceRevoker) RevokeGrant(ctx context.Context, grantID string) error {
	return r.srv.RevokeGrant(ctx, grantID)
}

// seedMairie creates the structure "mairie", its mediator alice (the staff
// member testPages signs in: testPrincipal) and the holder jeanne, whose
// mailbox is mailbox.
func seedMairie(t *testing.T, st *store.Store, now time.Time, mailbox string) people.Holder {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateStructure(ctx, people.Structure{ID: "mairie", Name: "Mairie", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateStaff(ctx, people.Staff{ID: testPrincipal.ID, Email: "alice@mairie.example", DisplayName: "Alice",
		Role: people.RoleMediator, StructureID: "mairie", Status: people.StaffActive, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	holder := people.Holder{ID: "jeanne", Mailbox: mailbox, DisplayName: "Jeanne", Email: "jeanne@perso.example", Language: "fr", CreatedAt: now}
	if err := st.CreateHolder(ctx, holder, "mairie"); err != nil {
		t.Fatal(err)
	}
	return holder
}

// pollWatch is the HTTP transport of the device client: it tells, once,
// that the token endpoint answered a poll with an error (the client now
// waits one interval before the next).
type pollWatch struct {
	tokenURL string
	once     sync.Once
	polled   chan struct{}
}

func (p *pollWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.URL.String() == p.tokenURL && resp.StatusCode == http.StatusBadRequest {
		p.once.Do(func() { close(p.polled) })
	}
	return resp, err
}

// TestDeviceFlowInteroperatesWithXOAuth2: golang.org/x/oauth2's RFC 8628
// client (Config.DeviceAuth, Config.DeviceAccessToken) against the real
// server (api.NewEcho): it gets authorization_pending first, keeps polling
// at the announced interval, and receives the mandate's tokens once the
// holder approves; a holder's refusal ends its polling with access_denied.
// A mail server introspects the token and reads the flat fields.
func TestDeviceFlowInteroperatesWithXOAuth2(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{}
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock})
	log := storetest.StartAuditLog(t, st, clock)
	const mailbox = "jeanne@mail.example"
	holder := seedMairie(t, st, clock.Now(), mailbox)
	quiet := slog.New(slog.DiscardHandler)
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	flow := authztest.NewDeviceFlow(t, st, log, clock, authz.Config{Issuer: issuer}, nil)
	svc, srv, keys := flow.Mandates, flow.Server, flow.Keys
	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet})
	api.RegisterOAuth(e, srv, testPages{})
	e.GET("/test/signin", func(c echo.Context) error {
		c.SetCookie(&http.Cookie{Name: "signed_in", Value: "1", Path: "/"})
		return c.Redirect(http.StatusSeeOther, c.QueryParam("next"))
	})
	ts.Config.Handler = e
	ts.Start()
	t.Cleanup(ts.Close)
	h := &harness{t: t, ctx: ctx, st: st, srv: srv, keys: keys, clock: clock, echo: e, ts: ts, issuer: issuer}

	// The mail server introspects; the mediator's tablet app is a public
	// client whose tokens are meant for it.
	mailServer, mailSecret := h.register(authz.ClientSpec{Name: "Mail server", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"audit.write"}})
	tablet, _ := h.register(authz.ClientSpec{Name: "Tablet", AuthMethod: authz.AuthMethodNone,
		GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantTypeDeviceCode, authz.GrantRefreshToken},
		Scopes:     []string{"mail.read", "mail.send"}, RedirectURIs: []string{appRedirect}, Audience: []string{mailServer.ID}})

	// The metadata announce the device endpoint.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+authz.PathMetadata, nil)
	if md := h.do(req); md.str("device_authorization_endpoint") != issuer+authz.PathDeviceAuthorization ||
		!strings.Contains(md.raw, authz.GrantTypeDeviceCode) {
		t.Fatalf("metadata = %s", md.raw)
	}

	watching := func() (context.Context, *pollWatch) {
		w := &pollWatch{tokenURL: ts.URL + authz.PathToken, polled: make(chan struct{})}
		return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: w, Timeout: 10 * time.Second}), w
	}
	cctx, _ := watching()
	conf := &oauth2.Config{
		ClientID: tablet.ID, RedirectURL: appRedirect, Scopes: []string{"mail.read"},
		Endpoint: oauth2.Endpoint{
			AuthURL: ts.URL + authz.PathAuthorize, TokenURL: ts.URL + authz.PathToken,
			DeviceAuthURL: ts.URL + authz.PathDeviceAuthorization, AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	// Alice signs in on the tablet (code flow): her token is the actor token.
	verifier := oauth2.GenerateVerifier()
	staffTok, err := conf.Exchange(cctx, h.authorize(h.browser(), conf, verifier), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("staff sign-in: %v", err)
	}
	conf.Scopes = []string{"mail.read", "mail.send"}
	ask := func() *oauth2.DeviceAuthResponse {
		t.Helper()
		da, err := conf.DeviceAuth(cctx,
			oauth2.SetAuthURLParam("holder_hint", mailbox),
			oauth2.SetAuthURLParam("purpose", "Dossier CAF"), oauth2.SetAuthURLParam("purpose_category", "social"),
			oauth2.SetAuthURLParam("duration", "1800"),
			oauth2.SetAuthURLParam("actor_token", staffTok.AccessToken),
			oauth2.SetAuthURLParam("actor_token_type", authz.TokenTypeAccessToken))
		if err != nil {
			t.Fatalf("DeviceAuth: %v", err)
		}
		return da
	}

	// Refused: the holder says no before the first poll.
	da := ask()
	m, err := srv.LookupUserCode(ctx, da.UserCode, "192.0.2.20")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Refuse(ctx, holder.ID, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = conf.DeviceAccessToken(cctx, da)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
		t.Fatalf("after refusal, DeviceAccessToken = %v, want access_denied", err)
	}

	// Approved after the first poll was answered authorization_pending.
	cctx, watch := watching()
	da = ask()
	if !regexp.MustCompile(`^[B-Z]{4}-[B-Z]{4}$`).MatchString(da.UserCode) || da.Interval != 5 ||
		da.VerificationURI != issuer+authz.PathDeviceVerification ||
		da.VerificationURIComplete != issuer+authz.PathDeviceVerification+"?user_code="+da.UserCode {
		t.Fatalf("device authorization = %+v", da)
	}
	approved := make(chan error, 1)
	go func() {
		select {
		case <-watch.polled:
		case <-time.After(30 * time.Second):
			approved <- errors.New("no poll")
			return
		}
		m, err := srv.LookupUserCode(ctx, strings.ToLower(da.UserCode), "192.0.2.20")
		if err == nil {
			clock.Advance(time.Second) // the next poll is at least one interval after the last
			_, err = svc.Approve(ctx, holder.ID, m.ID, mandate.Approval{})
		}
		approved <- err
	}()
	tok, err := conf.DeviceAccessToken(cctx, da)
	if aerr := <-approved; aerr != nil {
		t.Fatalf("approval: %v", aerr)
	}
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	if tok.RefreshToken == "" || tok.Type() != "Bearer" || tok.Expiry.IsZero() {
		t.Errorf("token = %+v", tok)
	}
	parts := strings.Split(tok.AccessToken, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Sub string `json:"sub"`
		Act struct {
			Sub string `json:"sub"`
		} `json:"act"`
		MandateID string `json:"mandate_id"`
		Aud       any    `json:"aud"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Sub != "holder:"+holder.ID || claims.Act.Sub != "staff:"+testPrincipal.ID ||
		claims.MandateID == "" || claims.Aud != mailServer.ID {
		t.Fatalf("claims = %s (%v)", raw, err)
	}

	// The mail server reads the flat fields (Dovecot ignores nested JSON).
	in := h.introspect(tok.AccessToken, mailServer.ID, mailSecret)
	if in.body["active"] != true || in.str("username") != mailbox || in.str("act_sub") != "staff:"+testPrincipal.ID ||
		in.str("rights") != "mail.read mail.send" || in.str("mandate_id") != claims.MandateID || in.str("presence") != "present" {
		t.Fatalf("introspection = %s", in.raw)
	}

	// The holder presses "Arrêter": inactive at once.
	if _, err := svc.End(ctx, claims.MandateID, mandate.EndedByHolder, mandate.Actor{Kind: mandate.ActorHolder, ID: holder.ID}, ""); err != nil {
		t.Fatal(err)
	}
	if in := h.introspect(tok.AccessToken, mailServer.ID, mailSecret); in.body["active"] != false {
		t.Errorf("after the holder ended it: %s", in.raw)
	}
	if _, err := conf.TokenSource(cctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh after the end: %v, want invalid_grant", err)
	}
}
