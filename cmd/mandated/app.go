package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
)

// app is the wired core every subcommand that touches state uses.
type app struct {
	cfg    *config
	log    *slog.Logger
	clock  mandate.Clock
	store  *store.Store
	bus    store.Bus
	keys   *authz.KeyManager
	authz  *authz.Server
	people *people.Service
	audit  *audit.Log // records need audit.Run running (serve runs it)
}

// openApp opens the database (migrating it when asked), loads the secrets and
// keys, and composes the authorization server and the people services.
func openApp(ctx context.Context, cfg *config, migrate bool) (*app, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.logger()
	clock := mandate.SystemClock{}
	if !cfg.isPostgres() && cfg.DatabaseURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	sec, err := cfg.loadSecrets(log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.databaseURL(), store.Options{Clock: clock, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redactURL(cfg.databaseURL()), err)
	}
	a := &app{cfg: cfg, log: log, clock: clock, store: st}
	if migrate {
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	a.keys, err = authz.NewKeyManager(ctx, authz.KeyManagerConfig{
		Store: st, Sealer: sec.Sealer, Clock: clock, Logger: log,
		MaxAccessTokenLifetime: cfg.AccessTTL,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	a.bus, err = st.RevocationBus(ctx)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("revocation bus: %w", err)
	}
	a.authz, err = authz.New(authz.Config{
		Issuer:               cfg.Issuer,
		HMACSecret:           sec.HMAC,
		AccessTokenLifetime:  cfg.AccessTTL,
		RefreshTokenLifetime: cfg.RefreshTTL,
	}, st, a.keys, authz.WithClock(clock), authz.WithLogger(log), authz.WithRevocationBus(a.bus))
	if err != nil {
		a.bus.Close()
		st.Close()
		return nil, fmt.Errorf("authorization server: %w", err)
	}
	a.people = people.NewService(st, sec.Sealer, clock, log, people.Config{})
	a.audit, err = audit.New(ctx, audit.Config{Store: st, Sealer: sec.Sealer, Origin: auditOrigin(cfg.Issuer), Clock: clock, Logger: log})
	if err != nil {
		a.bus.Close()
		st.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return a, nil
}

// auditOrigin names the audit log in its checkpoints and is its signer key's
// name: the issuer's host and path, then "/audit"
// (https://id.example.org → "id.example.org/audit"). Changing the issuer
// therefore starts a new log with a new key.
func auditOrigin(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "mandated/audit"
	}
	return u.Host + strings.TrimSuffix(u.Path, "/") + "/audit"
}

// Close stops the revocation bus and closes the database.
func (a *app) Close() error {
	busErr := a.bus.Close()
	if err := a.store.Close(); err != nil {
		return err
	}
	return busErr
}

// redactURL hides a password in a database URL before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return filepath.Clean(raw)
	}
	return u.Redacted()
}
