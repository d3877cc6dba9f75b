package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/people"
)

// TestAppRefusesTokensForADeactivatedStaffMember: the app wires people's
// subject check into the authorization server, so an RFC 7523 trust that
// allows any subject stops minting tokens for a staff member the moment they
// are deactivated (invalid_grant), while their active colleague still gets
// one.
func TestAppRefusesTokensForADeactivatedStaffMember(t *testing.T) {
	ctx := t.Context()
	var cfg config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.registerCommon(fs)
	a, err := parseAndOpen(ctx, fs, &cfg, []string{"--data-dir", t.TempDir(), "--log-level", "error"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.store.CreateStructure(ctx, people.Structure{ID: "tulle", Name: "Mairie de Tulle"}))
	now := a.clock.Now()
	for _, id := range []string{"alice", "bob", "chef"} {
		role := people.RoleMediator
		if id == "chef" {
			role = people.RoleAdmin
		}
		must(a.store.CreateStaff(ctx, people.Staff{ID: id, Email: id + "@tulle.fr", DisplayName: id, Role: role,
			StructureID: "tulle", Status: people.StaffActive, CreatedAt: now}))
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "idp-1", Algorithm: "ES256"})
	const idp = "https://idp.example.fr"
	_, err = a.authz.RegisterTrust(ctx, authz.TrustSpec{Issuer: idp, AnySubject: true, JWK: pub, Scopes: []string{"mail.read"}})
	must(err)
	portal, secret, err := a.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Portail", GrantTypes: []string{authz.GrantJWTBearer}, Scopes: []string{"mail.read"}})
	must(err)
	ts := httptest.NewServer(http.HandlerFunc(a.authz.Token))
	defer ts.Close()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "idp-1"}}, nil)
	must(err)
	n := 0
	grant := func(sub string) (int, map[string]any) {
		t.Helper()
		n++
		assertion, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: idp, Subject: sub, Audience: jwt.Audience{cfg.Issuer},
			ID: "jti-" + strconv.Itoa(n), IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute))}).Serialize()
		must(err)
		form := url.Values{"grant_type": {authz.GrantJWTBearer}, "assertion": {assertion}, "scope": {"mail.read"}}
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(portal.ID), url.QueryEscape(secret))
		resp, err := ts.Client().Do(req)
		must(err)
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := grant("staff:alice"); code != http.StatusOK {
		t.Fatalf("alice while active: %d %v", code, body)
	}

	adm := people.NewAdmin(a.people, a.store, people.AdminConfig{AccessEnders: []people.AccessEnder{a.authz}})
	chef := people.Principal{Subject: "staff:chef", Kind: "staff", ID: "chef", Role: people.RoleAdmin, StructureID: "tulle"}
	must(adm.Deactivate(ctx, chef, "tulle", "alice"))

	if code, body := grant("staff:alice"); code != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Errorf("alice once deactivated: %d %v", code, body)
	}
	if code, body := grant("staff:bob"); code != http.StatusOK {
		t.Errorf("bob, still active: %d %v", code, body)
	}
}
