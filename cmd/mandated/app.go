package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/ui"
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
	audit  *audit.Log // every state change records into it
	// mandates runs mandates and presence; hub wakes the pages following
	// one (wire_mandates.go).
	mandates *mandate.Service
	hub      *mandate.Hub
	// console streams live sessions to mediators; closed on shutdown.
	console *ui.ConsoleSessions
	// events streams mandate endings to resource servers; closed on shutdown.
	events *api.EventStreams
	writer *auditWriter
	// notices tells holders of their colleagues' accesses under a
	// delegation (the authorization server's token hook, wire_mandates.go).
	notices *accessNotices
	// notifier sends one-time codes, invitations and reset links (wire_notify.go).
	notifier notify.Notifier
	secrets  secrets
}

// auditWriter runs the audit log's single writer (Log.Run) for as long as
// the app is open, so every command — serve and the administration commands
// alike — records: no action without its record. stop waits for the writer
// to finish its batch, before the database closes.
type auditWriter struct {
	stop context.CancelFunc
	done chan struct{}
}

func startAuditWriter(l *audit.Log, logger *slog.Logger) *auditWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &auditWriter{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		if err := l.Run(ctx); err != nil {
			logger.Error("audit log writer stopped", "err", err)
		}
	}()
	return w
}

func (w *auditWriter) close() {
	w.stop()
	<-w.done
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
	a := &app{cfg: cfg, log: log, clock: clock, store: st, secrets: sec}
	a.notifier, err = cfg.Notify.open(log)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if migrate {
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	// The audit log comes first: everything after records into it.
	a.audit, err = audit.New(ctx, audit.Config{Store: st, Sealer: sec.Sealer, Origin: auditOrigin(cfg.Issuer), Clock: clock, Logger: log})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	a.writer = startAuditWriter(a.audit, log)
	a.keys, err = authz.NewKeyManager(ctx, authz.KeyManagerConfig{
		Store: st, Sealer: sec.Sealer, Clock: clock, Logger: log,
		MaxAccessTokenLifetime: cfg.AccessTTL, Recorder: a.audit,
	})
	if err != nil {
		a.writer.close()
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	a.bus, err = st.RevocationBus(ctx)
	if err != nil {
		a.writer.close()
		st.Close()
		return nil, fmt.Errorf("revocation bus: %w", err)
	}
	if err := a.openMandates(); err != nil {
		a.writer.close()
		a.bus.Close()
		st.Close()
		return nil, err
	}
	a.notices = a.newAccessNotices()
	a.authz, err = authz.New(authz.Config{
		Issuer:               cfg.Issuer,
		HMACSecret:           sec.HMAC,
		AccessTokenLifetime:  cfg.AccessTTL,
		RefreshTokenLifetime: cfg.RefreshTTL,
		MandateAudience:      cfg.Mandates.audience(),
	}, st, a.keys, authz.WithClock(clock), authz.WithLogger(log), authz.WithRevocationBus(a.bus), authz.WithRecorder(a.audit),
		// No token for a deactivated or unknown person, whatever the grant
		// (a.people is set below, before any request can arrive).
		authz.WithSubjectCheck(func(ctx context.Context, subject string) error {
			err := a.people.CheckSubject(ctx, subject)
			if errors.Is(err, people.ErrSubjectInactive) {
				return fmt.Errorf("%w: %w", authz.ErrSubjectRefused, err)
			}
			return err
		}),
		// Assisted sessions and delegations: the RFC 8628 device flow
		// creates mandates; their tokens live only while they do.
		authz.WithMandates(a.mandatesForAuthz()), authz.WithDeviceStore(st), authz.WithTokenHook(a.notices.hook),
		authz.WithStaffDirectory(func(ctx context.Context, staffID string) (string, error) {
			s, err := st.GetStaff(ctx, staffID)
			return s.StructureID, err
		}))
	if err != nil {
		a.writer.close()
		a.bus.Close()
		st.Close()
		return nil, fmt.Errorf("authorization server: %w", err)
	}
	a.people = people.NewService(st, sec.Sealer, clock, log, people.Config{Recorder: a.audit, Holders: st, SessionIdleTimeout: cfg.Account.SessionIdleTimeout})
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
	a.notices.waitFor(noticesDrain) // notices under way read the database
	a.writer.close()                // the writer finishes its batch before the database closes
	busErr := a.bus.Close()
	if err := a.store.Close(); err != nil {
		return err
	}
	return busErr
}

// parseAndOpen parses an administration command's flags and opens the app
// on the database they name, applying pending migrations.
func parseAndOpen(ctx context.Context, fs *flag.FlagSet, cfg *config, args []string) (*app, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return openApp(ctx, cfg, true)
}

// redactURL hides a password in a database URL before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return filepath.Clean(raw)
	}
	return u.Redacted()
}
