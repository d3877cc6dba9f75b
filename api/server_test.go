package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func newTestEcho(t *testing.T, ready func(context.Context) error) *echo.Echo {
	t.Helper()
	e := NewEcho(Config{MaxBodyBytes: 1024}, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: ready})
	e.POST("/form", func(c echo.Context) error { return c.String(http.StatusOK, "posted") })
	e.POST("/form-large", func(c echo.Context) error {
		if _, err := io.ReadAll(c.Request().Body); err != nil {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large")
		}
		return c.String(http.StatusOK, "token")
	})
	e.POST("/oauth2/token", func(c echo.Context) error { return c.String(http.StatusOK, "token") })
	e.GET("/boom", func(c echo.Context) error { panic("boom") })
	return e
}

func do(e *echo.Echo, method, path string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestEveryResponseCarriesSecurityHeaders(t *testing.T) {
	e := newTestEcho(t, nil)
	rec := do(e, http.MethodGet, "/healthz", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("healthz = %d", rec.Code)
	}
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	}
	for h, v := range want {
		if got := rec.Header().Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, part := range []string{"frame-ancestors 'none'", "script-src 'self'", "default-src 'self'"} {
		if !strings.Contains(csp, part) {
			t.Errorf("CSP %q lacks %q", csp, part)
		}
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Error("no request ID")
	}
}

func TestReadyzReflectsTheDatabase(t *testing.T) {
	var down error
	e := newTestEcho(t, func(context.Context) error { return down })
	if rec := do(e, http.MethodGet, "/readyz", ""); rec.Code != http.StatusOK {
		t.Fatalf("readyz up = %d", rec.Code)
	}
	down = errors.New("connection refused")
	if rec := do(e, http.MethodGet, "/readyz", ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz down = %d", rec.Code)
	}
}

func TestFormPostWithoutCSRFTokenIsRefused(t *testing.T) {
	e := newTestEcho(t, nil)
	rec := do(e, http.MethodPost, "/form", "a=b")
	if rec.Code != http.StatusBadRequest && rec.Code != http.StatusForbidden {
		t.Fatalf("POST without CSRF token = %d, want 400 or 403", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type = %q", ct)
	}
}

func TestOAuthEndpointsAreNotCSRFChecked(t *testing.T) {
	e := newTestEcho(t, nil)
	if rec := do(e, http.MethodPost, "/oauth2/token", "grant_type=x"); rec.Code != http.StatusOK {
		t.Fatalf("token endpoint = %d: %s", rec.Code, rec.Body)
	}
}

func TestOversizedBodiesAreRefused(t *testing.T) {
	e := newTestEcho(t, nil)
	rec := do(e, http.MethodPost, "/form-large", strings.Repeat("a", 2048))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body = %d", rec.Code)
	}
}

func TestPanicsBecomeProblemResponses(t *testing.T) {
	e := newTestEcho(t, nil)
	rec := do(e, http.MethodGet, "/boom", "")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"status":500`) {
		t.Fatalf("panic = %d %s", rec.Code, rec.Body)
	}
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	e := newTestEcho(t, nil)
	do(e, http.MethodGet, "/healthz", "")
	rec := do(e, http.MethodGet, "/metrics", "")
	if !strings.Contains(rec.Body.String(), `mandated_http_requests_total{code="200",method="GET",route="/healthz"} 1`) {
		t.Fatalf("metrics lack the healthz count:\n%s", rec.Body)
	}
}

func TestClientAddressIgnoresForwardedHeadersUnlessTheProxyIsTrusted(t *testing.T) {
	_, proxies, _ := net.ParseCIDR("10.0.0.0/8")
	tests := []struct {
		name    string
		trusted []*net.IPNet
		peer    string
		want    string
	}{
		{"no trusted proxy", nil, "192.0.2.7:5000", "192.0.2.7"},
		{"trusted proxy", []*net.IPNet{proxies}, "10.1.2.3:5000", "198.51.100.9"},
		{"untrusted peer", []*net.IPNet{proxies}, "192.0.2.7:5000", "192.0.2.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEcho(Config{TrustedProxies: tt.trusted}, Deps{Logger: slog.New(slog.DiscardHandler)})
			e.GET("/ip", func(c echo.Context) error { return c.String(http.StatusOK, c.RealIP()) })
			req := httptest.NewRequest(http.MethodGet, "/ip", nil)
			req.RemoteAddr = tt.peer
			req.Header.Set("X-Forwarded-For", "198.51.100.9")
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Body.String() != tt.want {
				t.Errorf("client address = %q, want %q", rec.Body.String(), tt.want)
			}
		})
	}
}
