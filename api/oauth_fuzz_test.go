package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/authz"
)

// FuzzTokenRequest feeds arbitrary bodies to the token endpoint: it must
// answer with a protocol error, never panic or fail with 5xx.
func FuzzTokenRequest(f *testing.F) {
	h := newHarness(f)
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	for _, seed := range []string{
		"", "grant_type=client_credentials", "grant_type=client_credentials&scope=mail.read%20mail.admin",
		"grant_type=authorization_code&code=ory_ac_x.y&code_verifier=abc&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
		"grant_type=refresh_token&refresh_token=ory_rt_a.b", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c",
		"client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=e30.e30.&grant_type=client_credentials",
		"%zz", "a=%00&grant_type=\x00", strings.Repeat("scope=mail.read&", 100),
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, body string, auth bool) {
		req := httptest.NewRequest(http.MethodPost, authz.PathToken, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth {
			req.SetBasicAuth(svc.ID, secret)
		}
		rec := httptest.NewRecorder()
		h.echo.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body.String())
		}
	})
}

// FuzzClientAssertion feeds arbitrary client assertions: never a panic, a
// 5xx or a token.
func FuzzClientAssertion(f *testing.F) {
	h := newHarness(f)
	c, key := h.assertionClient()
	soon := time.Now().Add(time.Hour)
	f.Add(assertion(f, key, "app-key-1", c.ID, "https://wrong.example", "seed-1", soon))
	f.Add(assertion(f, key, "other-kid", c.ID, h.issuer, "seed-2", soon))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, a string) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		req := httptest.NewRequest(http.MethodPost, authz.PathToken, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.echo.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code == http.StatusOK {
			t.Fatalf("assertion %q: %d %s", a, rec.Code, rec.Body.String())
		}
	})
}
