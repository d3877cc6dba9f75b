package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/ory/fosite"
)

func testJTIs(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	now := e.clock.Now()

	must(t, e.s.ClientAssertionJWTValid(ctx, "jti-1"))
	must(t, e.s.SetClientAssertionJWT(ctx, "jti-1", now.Add(time.Minute)))
	wantErr(t, e.s.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
	wantErr(t, e.s.SetClientAssertionJWT(ctx, "jti-1", now.Add(time.Hour)), fosite.ErrJTIKnown)

	// RFC 7523 shares the table.
	used, err := e.s.IsJWTUsed(ctx, "jti-1")
	must(t, err)
	if !used {
		t.Error("IsJWTUsed(jti-1) = false")
	}
	used, err = e.s.IsJWTUsed(ctx, "jti-2")
	must(t, err)
	if used {
		t.Error("IsJWTUsed(jti-2) = true before marking")
	}
	must(t, e.s.MarkJWTUsedForTime(ctx, "jti-2", now.Add(time.Minute)))
	if used, _ := e.s.IsJWTUsed(ctx, "jti-2"); !used {
		t.Error("IsJWTUsed(jti-2) = false after marking")
	}
	wantErr(t, e.s.MarkJWTUsedForTime(ctx, "jti-2", now.Add(time.Minute)), fosite.ErrJTIKnown)

	// Once expired, a jti is forgotten and may be stored again.
	e.clock.Advance(2 * time.Minute)
	must(t, e.s.ClientAssertionJWTValid(ctx, "jti-1"))
	must(t, e.s.SetClientAssertionJWT(ctx, "jti-1", e.clock.Now().Add(time.Minute)))
	wantErr(t, e.s.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
}

func testSigningKeys(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	t1, t2 := t0, t0.Add(time.Hour)
	k1 := authz.SigningKey{KID: "k1", Algorithm: "ES256", PublicJWK: []byte(`{"kty":"EC"}`), SealedPrivate: []byte{1, 2, 3}, CreatedAt: t1}
	k2 := authz.SigningKey{KID: "k2", Algorithm: "EdDSA", PublicJWK: []byte(`{"kty":"OKP"}`), SealedPrivate: []byte{4, 5, 6}, CreatedAt: t2}
	must(t, e.s.CreateSigningKey(ctx, k1))
	must(t, e.s.CreateSigningKey(ctx, k2))

	keys, err := e.s.ListSigningKeys(ctx)
	must(t, err)
	if len(keys) != 2 || keys[0].KID != "k2" || keys[1].KID != "k1" {
		t.Fatalf("ListSigningKeys = %+v, want k2 then k1", keys)
	}
	if keys[0].RetiredAt != nil || keys[1].RetiredAt == nil || !keys[1].RetiredAt.Equal(t2) {
		t.Errorf("retirement: k2 %v, k1 %v; want nil and %v", keys[0].RetiredAt, keys[1].RetiredAt, t2)
	}
	if string(keys[1].PublicJWK) != `{"kty":"EC"}` || !slices.Equal(keys[1].SealedPrivate, []byte{1, 2, 3}) ||
		keys[1].Algorithm != "ES256" || !keys[1].CreatedAt.Equal(t1) {
		t.Errorf("k1 = %+v", keys[1])
	}

	// A failed insert retires nothing: one transaction.
	dup := k2
	dup.CreatedAt = t2.Add(time.Hour)
	wantErr(t, e.s.CreateSigningKey(ctx, dup), mandate.ErrAlreadyExists)
	keys, err = e.s.ListSigningKeys(ctx)
	must(t, err)
	if keys[0].RetiredAt != nil {
		t.Error("failed CreateSigningKey retired the current key")
	}

	n, err := e.s.DeleteSigningKeysRetiredBefore(ctx, t2)
	must(t, err)
	if n != 0 {
		t.Errorf("deleted %d keys retired before %v, want 0", n, t2)
	}
	n, err = e.s.DeleteSigningKeysRetiredBefore(ctx, t2.Add(time.Second))
	must(t, err)
	if n != 1 {
		t.Errorf("deleted %d keys, want 1", n)
	}
	keys, err = e.s.ListSigningKeys(ctx)
	must(t, err)
	if len(keys) != 1 || keys[0].KID != "k2" {
		t.Errorf("after delete: %+v", keys)
	}
}

func testConsents(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	e.createClient(t, "a")
	e.createClient(t, "b")
	must(t, e.s.SaveConsent(ctx, authz.Consent{Subject: "staff:1", ClientID: "a", Scopes: []string{"mail.read"}, GrantedAt: t0}))
	must(t, e.s.SaveConsent(ctx, authz.Consent{Subject: "staff:1", ClientID: "b", Scopes: []string{"mail.send"}, GrantedAt: t0.Add(time.Minute)}))
	must(t, e.s.SaveConsent(ctx, authz.Consent{Subject: "staff:2", ClientID: "a", Scopes: []string{"mail.read"}, GrantedAt: t0}))

	t.Run("upsert replaces", func(t *testing.T) {
		later := t0.Add(time.Hour)
		must(t, e.s.SaveConsent(ctx, authz.Consent{Subject: "staff:1", ClientID: "a", Scopes: []string{"mail.read", "mail.delete"}, GrantedAt: later}))
		c, err := e.s.GetConsent(ctx, "staff:1", "a")
		must(t, err)
		if !slices.Equal(c.Scopes, []string{"mail.read", "mail.delete"}) || !c.GrantedAt.Equal(later) {
			t.Errorf("GetConsent = %+v", c)
		}
	})
	t.Run("list newest first, one subject", func(t *testing.T) {
		list, err := e.s.ListConsents(ctx, "staff:1")
		must(t, err)
		if len(list) != 2 || list[0].ClientID != "a" || list[1].ClientID != "b" {
			t.Errorf("ListConsents = %+v, want a (newest) then b", list)
		}
		list, err = e.s.ListConsents(ctx, "nobody")
		must(t, err)
		if len(list) != 0 {
			t.Errorf("ListConsents(nobody) = %+v", list)
		}
	})
	t.Run("delete", func(t *testing.T) {
		must(t, e.s.DeleteConsent(ctx, "staff:1", "b"))
		_, err := e.s.GetConsent(ctx, "staff:1", "b")
		wantErr(t, err, mandate.ErrNotFound)
		wantErr(t, e.s.DeleteConsent(ctx, "staff:1", "b"), mandate.ErrNotFound)
	})
	t.Run("unknown client", func(t *testing.T) {
		wantErr(t, e.s.SaveConsent(ctx, authz.Consent{Subject: "staff:1", ClientID: "nope", GrantedAt: t0}), mandate.ErrNotFound)
	})
}

func testTrusts(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	now := e.clock.Now()
	jwkA, _ := publicJWK(t, "ka")
	jwkB, _ := publicJWK(t, "kb")
	jwkC, _ := publicJWK(t, "kc")
	trusts := []authz.Trust{
		{ID: "t1", Issuer: "https://idp.example", Subject: "alice", KeyID: "ka", PublicJWK: jwkA, Scopes: []string{"mail.read"}, ExpiresAt: now.Add(time.Hour), CreatedAt: now},
		{ID: "t2", Issuer: "https://idp.example", AllowAnySubject: true, KeyID: "kb", PublicJWK: jwkB, Scopes: []string{"mail.send"}, ExpiresAt: now.Add(time.Hour), CreatedAt: now.Add(time.Second)},
		{ID: "t3", Issuer: "https://idp.example", Subject: "alice", KeyID: "kc", PublicJWK: jwkC, ExpiresAt: now.Add(-time.Second), CreatedAt: now.Add(2 * time.Second)},
	}
	for _, tr := range trusts {
		must(t, e.s.CreateTrust(ctx, tr))
	}
	dup := trusts[0]
	dup.ID = "t1-again"
	wantErr(t, e.s.CreateTrust(ctx, dup), mandate.ErrAlreadyExists)

	list, err := e.s.ListTrusts(ctx)
	must(t, err)
	if len(list) != 3 || list[0].ID != "t1" || !list[1].AllowAnySubject || !list[0].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("ListTrusts = %+v", list)
	}

	tests := []struct {
		name, subject, kid string
		found              bool
		scopes             []string
	}{
		{"named subject", "alice", "ka", true, []string{"mail.read"}},
		{"any subject", "bob", "kb", true, []string{"mail.send"}},
		{"other subject", "bob", "ka", false, nil},
		{"expired", "alice", "kc", false, nil},
		{"unknown key", "alice", "zz", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.s.GetPublicKey(ctx, "https://idp.example", tt.subject, tt.kid)
			scopes, serr := e.s.GetPublicKeyScopes(ctx, "https://idp.example", tt.subject, tt.kid)
			if !tt.found {
				wantErr(t, err, fosite.ErrNotFound)
				wantErr(t, serr, fosite.ErrNotFound)
				return
			}
			must(t, err)
			must(t, serr)
			if k.KeyID != tt.kid || !k.IsPublic() || !k.Valid() {
				t.Errorf("GetPublicKey = %+v", k)
			}
			if !slices.Equal(scopes, tt.scopes) {
				t.Errorf("scopes = %v, want %v", scopes, tt.scopes)
			}
		})
	}
	t.Run("key sets", func(t *testing.T) {
		set, err := e.s.GetPublicKeys(ctx, "https://idp.example", "alice")
		must(t, err)
		if len(set.Keys) != 2 || len(set.Key("ka")) != 1 || len(set.Key("kb")) != 1 {
			t.Errorf("alice's keys = %+v, want ka and kb", set.Keys)
		}
		_, err = e.s.GetPublicKeys(ctx, "https://other.example", "alice")
		wantErr(t, err, fosite.ErrNotFound)
	})
	t.Run("delete", func(t *testing.T) {
		must(t, e.s.DeleteTrust(ctx, "t1"))
		_, err := e.s.GetPublicKey(ctx, "https://idp.example", "alice", "ka")
		wantErr(t, err, fosite.ErrNotFound)
		wantErr(t, e.s.DeleteTrust(ctx, "t1"), mandate.ErrNotFound)
	})
}

func testGrants(t *testing.T, open Opener) {
	t.Run("RevokeGrantsOf", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		c := e.createClient(t, "app")
		other := e.createClient(t, "other")
		exp := t0.Add(time.Hour)
		r1 := newRequest("req-1", c, "staff:1", exp)
		r2 := newRequest("req-2", c, "staff:1", exp)
		r3 := newRequest("req-3", c, "staff:2", exp)
		r4 := newRequest("req-4", other, "staff:1", exp)
		must(t, e.s.CreateAuthorizeCodeSession(ctx, "code-1", r1))
		must(t, e.s.CreateAccessTokenSession(ctx, "at-1", r1))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", r1))
		must(t, e.s.CreateAuthorizeCodeSession(ctx, "code-2", r2)) // unused code only
		for _, r := range []*fosite.Request{r3, r4} {              // other subject, other client
			must(t, e.s.CreateAccessTokenSession(ctx, "at-"+r.ID, r))
			must(t, e.s.CreateRefreshTokenSession(ctx, "rt-"+r.ID, "at-"+r.ID, r))
		}

		ids, err := e.s.RevokeGrantsOf(ctx, "staff:1", "app")
		must(t, err)
		if !slices.Equal(ids, []string{"req-1", "req-2"}) {
			t.Errorf("RevokeGrantsOf = %v, want [req-1 req-2]", ids)
		}
		_, err = e.s.GetAccessTokenSession(ctx, "at-1", nil)
		wantErr(t, err, fosite.ErrInactiveToken)
		_, err = e.s.GetRefreshTokenSession(ctx, "rt-1", nil)
		wantErr(t, err, fosite.ErrInactiveToken)
		for _, code := range []string{"code-1", "code-2"} {
			_, err = e.s.GetAuthorizeCodeSession(ctx, code, nil)
			wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		}
		for _, sig := range []string{"req-3", "req-4"} {
			_, err = e.s.GetAccessTokenSession(ctx, "at-"+sig, nil)
			must(t, err)
			_, err = e.s.GetRefreshTokenSession(ctx, "rt-"+sig, nil)
			must(t, err)
		}
		ids, err = e.s.RevokeGrantsOf(ctx, "staff:1", "app")
		must(t, err)
		if len(ids) != 0 {
			t.Errorf("second RevokeGrantsOf touched %v", ids)
		}
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		c := e.createClient(t, "app")
		cut := t0.Add(time.Hour)
		old := newRequest("req-old", c, "staff:1", cut.Add(-time.Second))
		fresh := newRequest("req-new", c, "staff:1", cut)
		for _, r := range []*fosite.Request{old, fresh} {
			must(t, e.s.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r))
			must(t, e.s.CreatePKCERequestSession(ctx, "pkce-"+r.ID, r))
			must(t, e.s.CreateAccessTokenSession(ctx, "at-"+r.ID, r))
			must(t, e.s.CreateRefreshTokenSession(ctx, "rt-"+r.ID, "", r))
		}
		forever := newRequest("req-forever", c, "staff:1", time.Time{}) // no expiry recorded
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-forever", "", forever))
		must(t, e.s.SetClientAssertionJWT(ctx, "jti-old", cut.Add(-time.Second)))
		must(t, e.s.SetClientAssertionJWT(ctx, "jti-new", cut))

		n, err := e.s.DeleteExpired(ctx, cut)
		must(t, err)
		if n != 5 {
			t.Errorf("DeleteExpired removed %d rows, want 5", n)
		}
		_, err = e.s.GetAccessTokenSession(ctx, "at-req-old", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetAuthorizeCodeSession(ctx, "code-req-old", nil)
		wantErr(t, err, fosite.ErrNotFound)
		for _, sig := range []string{"rt-req-new", "rt-forever"} {
			_, err = e.s.GetRefreshTokenSession(ctx, sig, nil)
			must(t, err)
		}
		_, err = e.s.GetPKCERequestSession(ctx, "pkce-req-new", nil)
		must(t, err)
		wantErr(t, e.s.ClientAssertionJWTValid(ctx, "jti-new"), fosite.ErrJTIKnown)
	})
}
