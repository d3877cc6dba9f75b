package storetest

import (
	"testing"
	"time"

	"github.com/ory/fosite"
)

func testAuthorizeCodes(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	c := e.createClient(t, "app")
	req := newRequest("req-1", c, "staff:1", t0.Add(10*time.Minute))
	must(t, e.s.CreateAuthorizeCodeSession(ctx, "code-1", req))

	t.Run("round trip", func(t *testing.T) {
		got, err := e.s.GetAuthorizeCodeSession(ctx, "code-1", &fosite.DefaultSession{})
		must(t, err)
		checkRequest(t, got, req)
	})
	t.Run("nil session gets a DefaultSession", func(t *testing.T) {
		got, err := e.s.GetAuthorizeCodeSession(ctx, "code-1", nil)
		must(t, err)
		checkRequest(t, got, req)
	})
	t.Run("unknown code", func(t *testing.T) {
		_, err := e.s.GetAuthorizeCodeSession(ctx, "nope", nil)
		wantErr(t, err, fosite.ErrNotFound)
		wantErr(t, e.s.InvalidateAuthorizeCodeSession(ctx, "nope"), fosite.ErrNotFound)
	})
	t.Run("single use", func(t *testing.T) {
		must(t, e.s.InvalidateAuthorizeCodeSession(ctx, "code-1"))
		got, err := e.s.GetAuthorizeCodeSession(ctx, "code-1", &fosite.DefaultSession{})
		wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		checkRequest(t, got, req) // fosite needs the request to revoke the grant
		wantErr(t, e.s.InvalidateAuthorizeCodeSession(ctx, "code-1"), fosite.ErrInvalidatedAuthorizeCode)
	})
	t.Run("duplicate signature", func(t *testing.T) {
		if err := e.s.CreateAuthorizeCodeSession(ctx, "code-1", req); err == nil {
			t.Fatal("second code with the same signature accepted")
		}
	})
}

func testPKCE(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	c := e.createClient(t, "app")
	req := newRequest("req-1", c, "staff:1", t0.Add(10*time.Minute))
	req.Form.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
	req.Form.Set("code_challenge_method", "S256")
	must(t, e.s.CreatePKCERequestSession(ctx, "code-1", req))

	got, err := e.s.GetPKCERequestSession(ctx, "code-1", &fosite.DefaultSession{})
	must(t, err)
	checkRequest(t, got, req)
	if f := got.GetRequestForm(); f.Get("code_challenge") != req.Form.Get("code_challenge") || f.Get("code_challenge_method") != "S256" {
		t.Errorf("PKCE form = %v", f)
	}
	must(t, e.s.DeletePKCERequestSession(ctx, "code-1"))
	_, err = e.s.GetPKCERequestSession(ctx, "code-1", nil)
	wantErr(t, err, fosite.ErrNotFound)
	must(t, e.s.DeletePKCERequestSession(ctx, "code-1")) // already gone: no error, like fosite's memory store
}

func testAccessTokens(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	c := e.createClient(t, "app")
	r1 := newRequest("req-1", c, "staff:1", t0.Add(time.Hour))
	r2 := newRequest("req-2", c, "staff:1", t0.Add(time.Hour))
	must(t, e.s.CreateAccessTokenSession(ctx, "at-1a", r1))
	must(t, e.s.CreateAccessTokenSession(ctx, "at-1b", r1))
	must(t, e.s.CreateAccessTokenSession(ctx, "at-2", r2))

	got, err := e.s.GetAccessTokenSession(ctx, "at-1a", &fosite.DefaultSession{})
	must(t, err)
	checkRequest(t, got, r1)

	must(t, e.s.DeleteAccessTokenSession(ctx, "at-1b"))
	_, err = e.s.GetAccessTokenSession(ctx, "at-1b", nil)
	wantErr(t, err, fosite.ErrNotFound)
	must(t, e.s.DeleteAccessTokenSession(ctx, "at-1b"))

	must(t, e.s.RevokeAccessToken(ctx, "req-1"))
	_, err = e.s.GetAccessTokenSession(ctx, "at-1a", nil)
	wantErr(t, err, fosite.ErrNotFound)
	_, err = e.s.GetAccessTokenSession(ctx, "at-2", nil)
	must(t, err)
	must(t, e.s.RevokeAccessToken(ctx, "no-such-request"))
}

func testRefreshTokens(t *testing.T, open Opener) {
	t.Run("rotation retires the token and its grant's access tokens", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		c := e.createClient(t, "app")
		req := newRequest("req-1", c, "staff:1", t0.Add(24*time.Hour))
		must(t, e.s.CreateAccessTokenSession(ctx, "at-1", req))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))
		got, err := e.s.GetRefreshTokenSession(ctx, "rt-1", &fosite.DefaultSession{})
		must(t, err)
		checkRequest(t, got, req)

		must(t, e.s.RotateRefreshToken(ctx, "req-1", "rt-1"))
		must(t, e.s.CreateAccessTokenSession(ctx, "at-2", req))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-2", "at-2", req))

		got, err = e.s.GetRefreshTokenSession(ctx, "rt-1", &fosite.DefaultSession{})
		wantErr(t, err, fosite.ErrInactiveToken)
		checkRequest(t, got, req) // fosite needs it to revoke the family on reuse
		_, err = e.s.GetAccessTokenSession(ctx, "at-1", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = e.s.GetRefreshTokenSession(ctx, "rt-2", nil)
		must(t, err)
		_, err = e.s.GetAccessTokenSession(ctx, "at-2", nil)
		must(t, err)

		wantErr(t, e.s.RotateRefreshToken(ctx, "req-1", "rt-1"), fosite.ErrInactiveToken)
		wantErr(t, e.s.RotateRefreshToken(ctx, "req-1", "nope"), fosite.ErrNotFound)
	})
	t.Run("revoke by request ID ends the family only", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		c := e.createClient(t, "app")
		r1 := newRequest("req-1", c, "staff:1", t0.Add(time.Hour))
		r2 := newRequest("req-2", c, "staff:1", t0.Add(time.Hour))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-1a", "", r1))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-1b", "", r1))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-2", "", r2))
		must(t, e.s.RevokeRefreshToken(ctx, "req-1"))
		for _, sig := range []string{"rt-1a", "rt-1b"} {
			got, err := e.s.GetRefreshTokenSession(ctx, sig, nil)
			wantErr(t, err, fosite.ErrInactiveToken)
			if got == nil || got.GetID() != "req-1" {
				t.Errorf("%s: inactive token came back without its request", sig)
			}
		}
		_, err := e.s.GetRefreshTokenSession(ctx, "rt-2", nil)
		must(t, err)
		must(t, e.s.RevokeRefreshToken(ctx, "no-such-request"))
	})
	t.Run("delete", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		c := e.createClient(t, "app")
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-1", "", newRequest("req-1", c, "s", t0.Add(time.Hour))))
		must(t, e.s.DeleteRefreshTokenSession(ctx, "rt-1"))
		_, err := e.s.GetRefreshTokenSession(ctx, "rt-1", nil)
		wantErr(t, err, fosite.ErrNotFound)
		must(t, e.s.DeleteRefreshTokenSession(ctx, "rt-1"))
	})
}

func testTransactions(t *testing.T, open Opener) {
	e := newEnv(t, open)
	c := e.createClient(t, "app")
	req := newRequest("req-1", c, "staff:1", t0.Add(time.Hour))

	t.Run("rollback forgets", func(t *testing.T) {
		ctx, err := e.s.BeginTX(t.Context())
		must(t, err)
		must(t, e.s.CreateAccessTokenSession(ctx, "at-rolled-back", req))
		_, err = e.s.GetAccessTokenSession(ctx, "at-rolled-back", nil) // sees its own write
		must(t, err)
		must(t, e.s.Rollback(ctx))
		_, err = e.s.GetAccessTokenSession(t.Context(), "at-rolled-back", nil)
		wantErr(t, err, fosite.ErrNotFound)
	})
	t.Run("commit keeps", func(t *testing.T) {
		ctx, err := e.s.BeginTX(t.Context())
		must(t, err)
		must(t, e.s.CreateAccessTokenSession(ctx, "at-committed", req))
		must(t, e.s.CreateRefreshTokenSession(ctx, "rt-committed", "at-committed", req))
		must(t, e.s.Commit(ctx))
		_, err = e.s.GetRefreshTokenSession(t.Context(), "rt-committed", nil)
		must(t, err)
	})
	t.Run("rotation rolled back leaves the token usable", func(t *testing.T) {
		ctx, err := e.s.BeginTX(t.Context())
		must(t, err)
		must(t, e.s.RotateRefreshToken(ctx, "req-1", "rt-committed"))
		must(t, e.s.Rollback(ctx))
		_, err = e.s.GetRefreshTokenSession(t.Context(), "rt-committed", nil)
		must(t, err)
	})
	t.Run("commit or rollback without a transaction", func(t *testing.T) {
		if e.s.Commit(t.Context()) == nil || e.s.Rollback(t.Context()) == nil {
			t.Error("Commit/Rollback without BeginTX succeeded")
		}
	})
}
