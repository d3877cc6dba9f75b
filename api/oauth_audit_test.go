package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// TestOAuthEventsAreAudited runs real requests against a server recording
// into a real audit log on the same SQLite store, then reads the log.
func TestOAuthEventsAreAudited(t *testing.T) {
	var log *storetest.AuditLog
	h := newHarnessRecording(t, storetest.OpenSQLite(t), func(st *store.Store, clock mandate.Clock) authz.Recorder {
		log = storetest.StartAuditLog(t, st, clock)
		return log
	})
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	cc := func(scope string) reply {
		return h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, svc.ID, secret)
	}
	tok := cc("mail.read")
	if tok.status != http.StatusOK || tok.str("access_token") == "" {
		t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	if r := cc("mail.send"); r.status != http.StatusBadRequest || r.str("error") != "invalid_scope" {
		t.Fatalf("unregistered scope: %d %s", r.status, r.raw)
	}
	if r := h.post(authz.PathRevoke, url.Values{"token": {tok.str("access_token")}}, svc.ID, secret); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	// Unauthenticated garbage is not recorded.
	if r := h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}}, "nobody", "wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown client: %d %s", r.status, r.raw)
	}
	// A code flow: the person's consent, then the code exchange.
	app, _, conf := h.webApp()
	verifier := oauth2.GenerateVerifier()
	code := h.authorize(h.browser(), conf, verifier)
	if _, err := conf.Exchange(h.clientCtx(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if err := h.srv.WithdrawConsent(t.Context(), "staff:alice", app.ID); err != nil {
		t.Fatal(err)
	}

	page, err := log.Query(t.Context(), audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		action  audit.Action
		outcome audit.Outcome
		client  string
		actor   audit.ActorKind
		actorID string
		reason  string
	}
	var got []want
	for _, e := range slices.Backward(page.Events) { // oldest first
		got = append(got, want{e.Action, e.Outcome, e.ClientID, e.Actor.Kind, e.Actor.ID, e.Reason})
	}
	wants := []want{
		{audit.ActionKeyRotated, audit.OutcomeSuccess, "", audit.ActorSystem, "", "first signing key"},
		{audit.ActionClientRegistered, audit.OutcomeSuccess, svc.ID, audit.ActorSystem, "operator", ""},
		{audit.ActionTokenIssued, audit.OutcomeSuccess, svc.ID, audit.ActorClient, svc.ID, "grant_type=client_credentials scope=mail.read"},
		{audit.ActionRequestRefused, audit.OutcomeDenied, svc.ID, audit.ActorClient, svc.ID, "invalid_scope"},
		{audit.ActionTokenRevoked, audit.OutcomeSuccess, svc.ID, audit.ActorClient, svc.ID, "revoked by the client"},
		{audit.ActionClientRegistered, audit.OutcomeSuccess, app.ID, audit.ActorSystem, "operator", ""},
		{audit.ActionConsentGranted, audit.OutcomeSuccess, app.ID, audit.ActorStaff, "alice", "scope=mail.read"},
		{audit.ActionTokenIssued, audit.OutcomeSuccess, app.ID, audit.ActorStaff, "alice", "grant_type=authorization_code scope=mail.read"},
		{audit.ActionConsentWithdrawn, audit.OutcomeSuccess, app.ID, audit.ActorStaff, "alice", ""},
	}
	if !slices.Equal(got, wants) {
		t.Fatalf("audit log:\n got %+v\nwant %+v", got, wants)
	}
}

// failingRecorder is a log whose database refuses writes.
type failingRecorder struct{}

func (failingRecorder) Record(context.Context, audit.Event) (int64, error) {
	return 0, errors.New("database refuses writes")
}

// switchRecorder records nothing until failing is set, then fails.
type switchRecorder struct{ failing bool }

func (r *switchRecorder) Record(ctx context.Context, e audit.Event) (int64, error) {
	if r.failing {
		return failingRecorder{}.Record(ctx, e)
	}
	return 0, nil
}

func TestNoTokenWithoutItsRecord(t *testing.T) {
	rec := &switchRecorder{}
	h := newHarnessRecording(t, storetest.OpenSQLite(t), func(*store.Store, mandate.Clock) authz.Recorder { return rec })
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	rec.failing = true
	r := h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}}, svc.ID, secret)
	if r.status != http.StatusInternalServerError || r.str("error") != "server_error" || r.str("access_token") != "" {
		t.Fatalf("token while the log refuses writes: %d %s", r.status, r.raw)
	}
	if _, _, err := h.srv.RegisterClient(t.Context(), authz.ClientSpec{Name: "Other", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"mail.read"}}); err == nil {
		t.Fatal("a client was registered while the log refuses writes")
	}
	clients, err := h.srv.ListClients(t.Context())
	if err != nil || len(clients) != 1 {
		t.Fatalf("clients after a refused registration: %d, %v", len(clients), err)
	}
	if err := h.srv.RememberConsent(t.Context(), "staff:alice", svc.ID, []string{"mail.read"}); err == nil {
		t.Fatal("a consent was kept while the log refuses writes")
	}
	if ok, err := h.srv.ConsentCovers(t.Context(), "staff:alice", svc.ID, []string{"mail.read"}); ok || err != nil {
		t.Fatalf("consent covers after a refused record: %v, %v", ok, err)
	}
}
