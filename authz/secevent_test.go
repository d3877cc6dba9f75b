package authz_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
)

// verifySET checks a SET's signature with the server's published JWKS and
// its JOSE header, and returns its payload.
func verifySET(t *testing.T, e *deviceEnv, set string) (map[string]any, jose.Header) {
	t.Helper()
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(e.srv.Keys().JWKS(), &jwks); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(set, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse SET: %v", err)
	}
	h := jws.Signatures[0].Header
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("SET signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims, h
}

// serviceToken gets a client_credentials token for scope.
func (e *deviceEnv) serviceToken(id, secret, scope string) string {
	e.t.Helper()
	r := e.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, id, secret)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		e.t.Fatalf("client_credentials %s: %d %s", scope, r.status, r.raw)
	}
	return r.str("access_token")
}

func TestMandateEndedSET(t *testing.T) {
	e := newDeviceEnv(t)
	cc := []string{authz.GrantClientCredentials}
	mail, mailSecret := e.register(authz.ClientSpec{Name: "Mail server", GrantTypes: cc, Scopes: []string{authz.ScopeEventsRead}})
	other, _ := e.register(authz.ClientSpec{Name: "Other mail server", GrantTypes: cc, Scopes: []string{authz.ScopeEventsRead}})
	tablet, _ := e.register(authz.ClientSpec{Name: "Tablet", GrantTypes: []string{authz.GrantTypeDeviceCode},
		Scopes: []string{"mail.read"}, Audience: []string{mail.ID}})
	m, err := e.svc.Request(e.ctx, mandate.Request{
		Kind: mandate.KindSession, StructureID: e.structure, HolderID: e.holder.ID, DelegateID: e.staff.ID, ClientID: tablet.ID,
		Scopes: []string{"mail.read"}, Purpose: "Dossier CAF", PurposeCategory: mandate.PurposeSocial, Duration: 30 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.srv.MandateEndedSET(e.ctx, mail.ID, m); ok || err != nil {
		t.Fatalf("a requested mandate gave a SET (%v, %v)", ok, err)
	}
	e.approve(m.ID)
	e.clk.Advance(time.Second)
	m, err = e.svc.End(e.ctx, m.ID, mandate.EndedByHolder, mandate.Actor{Kind: mandate.ActorHolder, ID: e.holder.ID}, "")
	if err != nil {
		t.Fatal(err)
	}

	// The resource server named in the tokens' audience: the mailbox too.
	set, ok, err := e.srv.MandateEndedSET(e.ctx, mail.ID, m)
	if !ok || err != nil {
		t.Fatalf("audience: %v, %v", ok, err)
	}
	claims, h := verifySET(t, e, set)
	if h.ExtraHeaders[jose.HeaderType] != authz.SecEventJWTType || h.Algorithm != "ES256" {
		t.Errorf("header = %+v", h)
	}
	const sessionRevoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	want := map[string]any{
		"iss": e.issuer, "aud": mail.ID, "txn": "ended:" + m.ID,
		"sub_id": map[string]any{
			"format":  "complex",
			"session": map[string]any{"format": "opaque", "id": m.ID},
			"user":    map[string]any{"format": "email", "email": holderMailbox},
		},
		"events": map[string]any{sessionRevoked: map[string]any{
			"initiating_entity": "user",
			"reason_admin":      map[string]any{"en": "Mandate ended by the holder.", "fr": "Mandat arrêté par la personne titulaire."},
			"reason_user":       map[string]any{"en": "The person stopped the session.", "fr": "La personne a arrêté la session."},
			"event_timestamp":   float64(m.EndedAt.Unix()),
			"end_reason":        "holder",
		}},
	}
	for k, v := range want {
		if asJSON(claims[k]) != asJSON(v) {
			t.Errorf("%s = %s, want %s", k, asJSON(claims[k]), asJSON(v))
		}
	}
	if jti, _ := claims["jti"].(string); len(jti) < 16 {
		t.Errorf("jti = %v", claims["jti"])
	}
	if iat, _ := claims["iat"].(float64); int64(iat) != e.clk.Now().Unix() {
		t.Errorf("iat = %v, want %d", claims["iat"], e.clk.Now().Unix())
	}
	for _, forbidden := range []string{"sub", "exp"} { // SSF 1.0 §4.1
		if _, ok := claims[forbidden]; ok {
			t.Errorf("the SET carries %s", forbidden)
		}
	}
	// A SET is no access token: introspection does not take it for one.
	if r := e.post(authz.PathIntrospect, url.Values{"token": {set}}, mail.ID, mailSecret); r.status != http.StatusOK || r.body["active"] != false {
		t.Errorf("introspecting a SET: %d %s", r.status, r.raw)
	}
	set2, _, _ := e.srv.MandateEndedSET(e.ctx, mail.ID, m)
	if c2, _ := verifySET(t, e, set2); c2["jti"] == claims["jti"] || c2["txn"] != claims["txn"] {
		t.Errorf("two SETs for one ending: jti %v/%v, txn %v/%v", claims["jti"], c2["jti"], claims["txn"], c2["txn"])
	}

	// The client the tokens were issued to: the mandate id alone.
	set, ok, err = e.srv.MandateEndedSET(e.ctx, tablet.ID, m)
	if !ok || err != nil {
		t.Fatalf("issued to: %v, %v", ok, err)
	}
	claims, _ = verifySET(t, e, set)
	if asJSON(claims["sub_id"]) != asJSON(map[string]any{"format": "opaque", "id": m.ID}) || claims["aud"] != tablet.ID {
		t.Errorf("issued-to SET: sub_id %s, aud %v", asJSON(claims["sub_id"]), claims["aud"])
	}

	// Anyone else: nothing.
	for _, who := range []string{other.ID, e.app.ID, "unknown-client", ""} {
		if set, ok, err := e.srv.MandateEndedSET(e.ctx, who, m); ok || err != nil || set != "" {
			t.Errorf("%q sees the mandate: %v, %v", who, ok, err)
		}
	}
	// Once the client is deleted, its registered audience goes with it.
	if err := e.srv.DeleteClient(e.ctx, tablet.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.srv.MandateEndedSET(e.ctx, mail.ID, m); ok || err != nil {
		t.Errorf("after the client's deletion: %v, %v", ok, err)
	}
}

func TestEndWordsForEveryReason(t *testing.T) {
	e := newDeviceEnv(t)
	mail, _ := e.register(authz.ClientSpec{Name: "Mail server", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{authz.ScopeEventsRead}})
	entities := []string{"admin", "user", "policy", "system"} // CAEP 1.0 §2
	for _, r := range mandate.EndReasons() {
		m := mandate.Mandate{ID: "m-" + string(r), ClientID: mail.ID, State: mandate.StateEnded, EndReason: r, EndedAt: e.clk.Now()}
		set, ok, err := e.srv.MandateEndedSET(e.ctx, mail.ID, m)
		if !ok || err != nil {
			t.Fatalf("%s: %v, %v", r, ok, err)
		}
		claims, _ := verifySET(t, e, set)
		ev, _ := claims["events"].(map[string]any)["https://schemas.openid.net/secevent/caep/event-type/session-revoked"].(map[string]any)
		if !slices.Contains(entities, ev["initiating_entity"].(string)) || ev["end_reason"] != string(r) {
			t.Errorf("%s: %s", r, asJSON(ev))
		}
		for _, k := range []string{"reason_admin", "reason_user"} {
			words, _ := ev[k].(map[string]any)
			if en, fr := words["en"], words["fr"]; en == nil || fr == nil || en == "" || fr == "" || en == fr || en == "Mandate ended." {
				t.Errorf("%s %s = %v", r, k, words)
			}
		}
	}
}

func TestEventSubscriber(t *testing.T) {
	e := newDeviceEnv(t)
	cc := []string{authz.GrantClientCredentials}
	mail, mailSecret := e.register(authz.ClientSpec{Name: "Mail server", GrantTypes: cc, Scopes: []string{authz.ScopeEventsRead, "audit.write"}})
	tok := e.serviceToken(mail.ID, mailSecret, authz.ScopeEventsRead)
	sub, err := e.srv.EventSubscriber(e.ctx, tok)
	if err != nil || sub.ID != mail.ID || !sub.Expires.After(e.clk.Now()) {
		t.Fatalf("EventSubscriber = %+v, %v", sub, err)
	}
	if _, err := e.srv.EventSubscriber(e.ctx, e.serviceToken(mail.ID, mailSecret, "audit.write")); !errors.Is(err, authz.ErrSubscriberScope) {
		t.Errorf("audit.write only: %v", err)
	}
	// A person's token, even one whose client could ask for the scope, is
	// not a resource server's.
	if _, err := e.srv.EventSubscriber(e.ctx, e.staffToken); !errors.Is(err, authz.ErrSubscriberScope) {
		t.Errorf("a staff member's token: %v", err)
	}
	for _, bad := range []string{"", "nope", tok + "x"} {
		if _, err := e.srv.EventSubscriber(e.ctx, bad); !errors.Is(err, authz.ErrSubscriberToken) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, authz.PathRevoke, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(mail.ID, mailSecret)
	rw := httptest.NewRecorder()
	e.srv.Revoke(rw, req)
	if rw.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rw.Code, rw.Body)
	}
	if _, err := e.srv.EventSubscriber(e.ctx, tok); !errors.Is(err, authz.ErrSubscriberToken) {
		t.Errorf("revoked: %v", err)
	}
}
