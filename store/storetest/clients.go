package storetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"slices"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/ory/fosite"
)

// publicJWK returns a fresh P-256 public key as a JWK, and as a JWK set.
func publicJWK(t *testing.T, kid string) (jwk []byte, set []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	k := josev3.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
	jwk, err = json.Marshal(k)
	must(t, err)
	set, err = json.Marshal(josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{k}})
	must(t, err)
	return jwk, set
}

func testClients(t *testing.T, open Opener) {
	t.Run("round trip with every field", func(t *testing.T) {
		e := newEnv(t, open)
		_, set := publicJWK(t, "k1")
		want := &authz.Client{
			ID: "app", Name: "Mail app", RedirectURIs: []string{"https://a.example/cb", "https://b.example/cb"},
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
			Scopes: []string{"mail.read"}, Audience: []string{"https://mail.example"},
			AuthMethod: authz.AuthMethodPrivateKey, JWKSURI: "https://a.example/jwks", JWKS: set,
			AuthSigningAlg: "EdDSA", CreatedAt: t0,
		}
		must(t, e.s.CreateClient(t.Context(), want))
		fc, err := e.s.GetClient(t.Context(), "app")
		must(t, err)
		got, ok := fc.(*authz.Client)
		if !ok {
			t.Fatalf("GetClient returned %T, want *authz.Client", fc)
		}
		if got.Name != want.Name || got.AuthMethod != want.AuthMethod || got.JWKSURI != want.JWKSURI ||
			got.AuthSigningAlg != want.AuthSigningAlg || !got.CreatedAt.Equal(t0) ||
			!slices.Equal(got.RedirectURIs, want.RedirectURIs) || !slices.Equal(got.GrantTypes, want.GrantTypes) ||
			!slices.Equal(got.ResponseTypes, want.ResponseTypes) || !slices.Equal(got.Scopes, want.Scopes) ||
			!slices.Equal(got.Audience, want.Audience) || len(got.SecretHash) != 0 {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if ks := got.GetJSONWebKeys(); ks == nil || len(ks.Key("k1")) != 1 {
			t.Errorf("JWKS not prepared: %v", ks)
		}
	})
	t.Run("secret hash kept, JWKS absent", func(t *testing.T) {
		e := newEnv(t, open)
		e.createClient(t, "c1")
		fc, err := e.s.GetClient(t.Context(), "c1")
		must(t, err)
		if string(fc.GetHashedSecret()) != "hash-c1" || fc.(*authz.Client).GetJSONWebKeys() != nil {
			t.Errorf("got %+v", fc)
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		e := newEnv(t, open)
		_, err := e.s.GetClient(t.Context(), "nope")
		wantErr(t, err, fosite.ErrNotFound)
	})
	t.Run("duplicate ID", func(t *testing.T) {
		e := newEnv(t, open)
		e.createClient(t, "c1")
		err := e.s.CreateClient(t.Context(), &authz.Client{ID: "c1", Name: "again", AuthMethod: authz.AuthMethodNone})
		wantErr(t, err, mandate.ErrAlreadyExists)
	})
	t.Run("list in creation order", func(t *testing.T) {
		e := newEnv(t, open)
		for i, id := range []string{"zed", "alpha", "mid"} {
			c := &authz.Client{ID: id, Name: id, AuthMethod: authz.AuthMethodNone, CreatedAt: t0.Add(time.Duration(i) * time.Minute)}
			must(t, e.s.CreateClient(t.Context(), c))
		}
		list, err := e.s.ListClients(t.Context())
		must(t, err)
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, []string{"zed", "alpha", "mid"}) {
			t.Errorf("ListClients = %v", ids)
		}
	})
	t.Run("delete cascades to tokens and consents", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		c := e.createClient(t, "gone")
		keep := e.createClient(t, "kept")
		for _, cl := range []*authz.Client{c, keep} {
			req := newRequest("req-"+cl.ID, cl, "staff:1", t0.Add(time.Hour))
			must(t, e.s.CreateAuthorizeCodeSession(ctx, "code-"+cl.ID, req))
			must(t, e.s.CreatePKCERequestSession(ctx, "pkce-"+cl.ID, req))
			must(t, e.s.CreateAccessTokenSession(ctx, "at-"+cl.ID, req))
			must(t, e.s.CreateRefreshTokenSession(ctx, "rt-"+cl.ID, "at-"+cl.ID, req))
			must(t, e.s.SaveConsent(ctx, authz.Consent{Subject: "staff:1", ClientID: cl.ID, Scopes: []string{"mail.read"}}))
		}
		must(t, e.s.DeleteClient(ctx, "gone"))
		_, err := e.s.GetClient(ctx, "gone")
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetAuthorizeCodeSession(ctx, "code-gone", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetPKCERequestSession(ctx, "pkce-gone", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetAccessTokenSession(ctx, "at-gone", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetRefreshTokenSession(ctx, "rt-gone", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetConsent(ctx, "staff:1", "gone")
		wantErr(t, err, mandate.ErrNotFound)
		// The other client's records stay.
		_, err = e.s.GetAccessTokenSession(ctx, "at-kept", nil)
		must(t, err)
		_, err = e.s.GetConsent(ctx, "staff:1", "kept")
		must(t, err)
		wantErr(t, e.s.DeleteClient(ctx, "gone"), mandate.ErrNotFound)
	})
}
