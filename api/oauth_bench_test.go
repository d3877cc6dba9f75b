package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mandated/mandated/authz"
)

func benchRequest(path, body, id, secret string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return req
}

// BenchmarkClientCredentialsIssue issues access tokens through the echo
// handlers on the real SQLite store (one INSERT and one ES256 signature each).
func BenchmarkClientCredentialsIssue(b *testing.B) {
	h := newHarness(b)
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.echo.ServeHTTP(rec, benchRequest(authz.PathToken, body, svc.ID, secret))
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkIntrospect introspects one active token through the echo handlers:
// client and token come from memory, no SQL per call.
func BenchmarkIntrospect(b *testing.B) {
	h := newHarness(b)
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	tok := h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}}, svc.ID, secret).str("access_token")
	body := url.Values{"token": {tok}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.echo.ServeHTTP(rec, benchRequest(authz.PathIntrospect, body, svc.ID, secret))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"active":true`) {
				b.Errorf("%d %s", rec.Code, rec.Body.String())
				return
			}
		}
	})
}
