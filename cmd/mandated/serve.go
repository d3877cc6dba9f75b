package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

func runServe(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("serve", "serve [flags]", out)
	cfg.registerCommon(fs)
	cfg.registerServe(fs)
	adminEmail := fs.String("admin-email", envOr("MANDATED_ADMIN_EMAIL", "admin@mandated.localhost"),
		"email of the platform admin created on first start when there is no staff at all [MANDATED_ADMIN_EMAIL]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	proxies, err := cfg.trustedProxies()
	if err != nil {
		return err
	}
	a, err := openApp(ctx, &cfg, cfg.AutoMigrate)
	if err != nil {
		return err
	}
	defer a.Close()

	if err := bootstrapAdmin(ctx, a, *adminEmail, out); err != nil {
		return err
	}
	if err := a.authz.EnsureConsoleClient(ctx); err != nil {
		return err
	}

	e, err := a.newEcho(proxies)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
	if a.console != nil {
		srv.RegisterOnShutdown(a.console.Shutdown) // live-session streams end with the server
	}
	if a.events != nil {
		srv.RegisterOnShutdown(a.events.Shutdown) // resource servers' event streams too
	}
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	go a.authz.Run(bg)
	go func() {
		if err := a.bus.Run(bg); err != nil {
			a.log.Error("revocation bus stopped", "err", err)
		}
	}()
	go a.sweepExpired(bg)
	go a.runRetention(bg)
	go a.runMandateSweep(bg)
	// The audit writer (started by openApp) stops in a.Close, after the HTTP
	// server below has drained.

	a.log.Info("mandated listening", "addr", ln.Addr().String(), "issuer", cfg.Issuer,
		"database", a.store.Dialect(), "version", version)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down: finishing requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// bootstrapAdmin creates the first platform admin when there is no staff at
// all, and prints the enrolment link where they set their own password and
// second factor.
func bootstrapAdmin(ctx context.Context, a *app, email string, out io.Writer) error {
	has, err := a.people.HasStaff(ctx)
	if err != nil || has {
		return err
	}
	staff, token, err := a.people.BootstrapPlatformAdmin(ctx, email)
	if errors.Is(err, people.ErrAlreadyBootstrapped) { // another replica did it
		return nil
	}
	if err != nil {
		return fmt.Errorf("create the first admin: %w", err)
	}
	fmt.Fprintf(out, "\nNo staff account yet: a platform admin (%s) was created.\n", staff.Email)
	fmt.Fprintf(out, "Open this link once to choose your password and second factor (valid %s):\n\n  %s\n\n",
		a.people.Config().EnrolmentTTL, ui.EnrolmentURL(a.cfg.Issuer, token))
	return nil
}

// sweepExpired deletes, every ten minutes, expired token records, browser
// sessions, reset links, one-time codes and passkey ceremonies, and sign-in
// failures older than the throttle window.
func (a *app) sweepExpired(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := a.store.DeleteExpired(ctx, a.clock.Now())
			if err != nil {
				a.log.Warn("sweep expired tokens", "err", err)
				continue
			}
			if n > 0 {
				a.log.Debug("swept expired tokens", "rows", n)
			}
			if _, err := a.people.PruneSignInFailures(ctx); err != nil {
				a.log.Warn("prune old sign-in failures", "err", err)
			}
			now := a.clock.Now()
			for what, prune := range map[string]func(context.Context, time.Time) (int, error){
				"browser sessions and reset links": a.store.PruneSessions,
				// codes count towards the hourly send limit: keep a day of them
				"one-time codes": func(ctx context.Context, now time.Time) (int, error) {
					return a.store.PruneCodes(ctx, now.Add(-24*time.Hour))
				},
				"passkey ceremonies": a.store.PrunePasskeyCeremonies,
			} {
				if _, err := prune(ctx, now); err != nil {
					a.log.Warn("prune expired "+what, "err", err)
				}
			}
		}
	}
}

// newEcho returns every route and page serve serves: the HTTP stack, the
// OAuth2 server, the audit endpoints and each feature (wire.go).
func (a *app) newEcho(proxies []*net.IPNet) (*echo.Echo, error) {
	secure := strings.HasPrefix(a.cfg.Issuer, "https://")
	e := api.NewEcho(api.Config{SecureCookies: secure, HSTS: secure, TrustedProxies: proxies,
		LargeBodies: api.ImportBodyLimits()},
		api.Deps{Logger: a.log, Ready: a.store.Ping})
	pages := ui.New(ui.Deps{People: a.people, Consents: a.authz, Logger: a.log, SecureCookies: secure, Banners: a.newAdmin()})
	pages.Register(e)
	api.RegisterOAuth(e, a.authz, pages)
	api.RegisterAudit(e, a.audit)
	api.RegisterAuditor(e, a.audit, pages.CurrentPrincipal)
	if err := a.registerFeatures(e, pages); err != nil {
		return nil, err
	}
	return e, nil
}
