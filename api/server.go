// Package api is mandated's HTTP layer on echo: the server, its middleware
// (security headers, CSRF, body limits, request logs, metrics), health
// endpoints, and the OAuth2 endpoints that hand requests to package authz.
// Pages live in package ui; both are adapters over the domain packages.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what the HTTP layer needs to know about its deployment.
type Config struct {
	// SecureCookies marks cookies Secure; true whenever the issuer is https.
	SecureCookies bool
	// HSTS sends Strict-Transport-Security; true whenever the issuer is https.
	HSTS bool
	// MaxBodyBytes bounds every request body; 64 KiB when zero.
	MaxBodyBytes int64
	// LargeBodies sets a different bound for some routes, keyed by method
	// and route path as registered ("POST /api/holders/import"): file
	// uploads that MaxBodyBytes would refuse. Nil: none (ImportBodyLimits
	// gives the holders CSV imports' routes).
	LargeBodies map[string]int64
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For header names the client's address. When empty the
	// client address is the connection's peer, and X-Forwarded-For is
	// ignored, so nobody can dodge per-IP sign-in throttling with a header.
	TrustedProxies []*net.IPNet
}

// MaxImportBodyBytes bounds the body of a holders CSV import: the file, and
// from the page its multipart envelope (a few hundred bytes).
const MaxImportBodyBytes = 2 << 20

// ImportBodyLimits are the Config.LargeBodies of the holders CSV imports:
// the API's and the admin page's, MaxImportBodyBytes each.
func ImportBodyLimits() map[string]int64 {
	return map[string]int64{
		http.MethodPost + " /api/holders/import":   MaxImportBodyBytes,
		http.MethodPost + " /admin/holders/import": MaxImportBodyBytes,
	}
}

// Deps are the server's collaborators.
type Deps struct {
	Logger *slog.Logger
	// Ready reports whether the server can serve (the database answers).
	Ready func(ctx context.Context) error
	// Registry collects Prometheus metrics; a new one when nil.
	Registry *prometheus.Registry
}

// NewEcho builds the echo instance with mandated's middleware and health and
// metrics endpoints. Callers register the OAuth2 endpoints (RegisterOAuth) and
// the pages (ui.UI.Register) on it.
func NewEcho(cfg Config, d Deps) *echo.Echo {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
		d.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(d.Logger)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)

	metrics := newHTTPMetrics(d.Registry)
	e.Use(middleware.RequestID())
	e.Use(metrics.middleware)
	e.Use(requestLogger(d.Logger))
	e.Use(recoverer(d.Logger))
	e.Use(securityHeaders(cfg.HSTS))
	e.Use(bodyLimit(cfg.MaxBodyBytes, cfg.LargeBodies))
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper:        csrfSkipper,
		TokenLookup:    "header:X-CSRF-Token,form:_csrf",
		CookieName:     "mandated_csrf",
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   cfg.SecureCookies,
		CookieSameSite: http.SameSiteLaxMode,
	}))

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if d.Ready != nil {
			ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
			defer cancel()
			if err := d.Ready(ctx); err != nil {
				d.Logger.WarnContext(ctx, "not ready", "err", err)
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database"})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{})))
	return e
}

// ipExtractor reads the client address from the connection, or from
// X-Forwarded-For when the request came through a trusted proxy.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// csrfSkipper exempts endpoints that are not browser forms: client-authenticated
// OAuth2 endpoints, machine endpoints, and static files.
func csrfSkipper(c echo.Context) bool {
	if OAuthCSRFSkipper(c) || ReportCSRFSkipper(c) {
		return true
	}
	p := c.Request().URL.Path
	switch p {
	case "/healthz", "/readyz", "/metrics", PathEvents: // PathEvents: Bearer-authenticated stream
		return true
	}
	return strings.HasPrefix(p, "/static/") || strings.HasPrefix(p, "/.well-known/")
}

// securityHeaders sets the headers every response carries. The CSP allows no
// inline script or style, and no framing (consent pages must never be framed).
func securityHeaders(hsts bool) echo.MiddlewareFunc {
	const csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
		"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
			if hsts {
				h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
			}
			return next(c)
		}
	}
}

// bodyLimit caps request bodies; reading past the limit fails. The limit is
// limit, or large["METHOD /route/path"] for the routes it names (echo runs
// this middleware after routing, so c.Path() is the route's path). A body
// announced larger is refused at once with 413. The OAuth2 endpoints carry
// their own limit (see RegisterOAuth) so that they answer with the RFC 6749
// error instead of a problem document.
func bodyLimit(limit int64, large map[string]int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if strings.HasPrefix(r.URL.Path, "/oauth2/") {
				return next(c)
			}
			bound := limit
			if n, ok := large[r.Method+" "+c.Path()]; ok && n > 0 {
				bound = n
			}
			if r.ContentLength > bound {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large")
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, bound)
			return next(c)
		}
	}
}

// recoverer turns a panic into a 500 and a log line with the request ID.
func recoverer(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			logger.ErrorContext(c.Request().Context(), "panic", "err", err,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "stack", string(stack))
			return err
		},
	})
}

// requestLogger writes one structured line per request. It logs the path, not
// the query string, which may carry codes or tokens.
func requestLogger(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogMethod: true, LogURIPath: true, LogLatency: true,
		LogRequestID: true, LogRemoteIP: true, LogError: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", v.Method), slog.String("path", v.URIPath),
				slog.Int("status", v.Status), slog.Duration("latency", v.Latency),
				slog.String("request_id", v.RequestID), slog.String("remote_ip", v.RemoteIP),
			}
			if v.Error != nil {
				attrs = append(attrs, slog.String("err", v.Error.Error()))
			}
			logger.LogAttrs(c.Request().Context(), level, "http request", attrs...)
			return nil
		},
	})
}

// errorHandler answers errors that reached echo: RFC 9457 problem+json for
// API clients, plain text for everything else (pages render their own errors).
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		detail := "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			if m, ok := he.Message.(string); ok {
				detail = m
			} else {
				detail = http.StatusText(status)
			}
		} else {
			logger.ErrorContext(c.Request().Context(), "unhandled error", "err", err,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		if status == http.StatusForbidden && strings.Contains(detail, "CSRF") {
			detail = "the form expired or was sent from another site; reload the page and try again"
		}
		_ = WriteProblem(c, Problem{Status: status, Title: http.StatusText(status), Detail: detail})
	}
}
