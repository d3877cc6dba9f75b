package people

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
)

// Config tunes the people services; zero fields take the defaults.
type Config struct {
	EnrolmentTTL time.Duration // how long an enrolment link works; 72h
	SessionTTL   time.Duration // absolute lifetime of a browser session; 12h
	// SessionIdleTimeout ends a browser session unused for that long; 30m.
	SessionIdleTimeout time.Duration
	// ThrottleWindow is the sliding window in which failed sign-ins count; 15m.
	ThrottleWindow time.Duration
	// MaxAccountFailures within the window lock an account; 5.
	MaxAccountFailures int
	// MaxIPFailures within the window block an IP address; 20.
	MaxIPFailures int
	// Recorder records sign-ins, enrolments and ended sessions in the audit
	// log (*audit.Log). The binary always sets it; nil records nothing, for
	// tests about other things.
	Recorder Recorder
	// Holders names signed-in holders; nil means holder sessions are refused.
	Holders HolderReader
}

// Recorder records security events; *audit.Log satisfies it. An error means
// the event was not recorded and the action must not happen.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (int64, error)
}

type nopRecorder struct{}

func (nopRecorder) Record(context.Context, audit.Event) (int64, error) { return 0, nil }

func (c Config) withDefaults() Config {
	if c.EnrolmentTTL <= 0 {
		c.EnrolmentTTL = 72 * time.Hour
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.SessionIdleTimeout <= 0 {
		c.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if c.ThrottleWindow <= 0 {
		c.ThrottleWindow = 15 * time.Minute
	}
	if c.MaxAccountFailures <= 0 {
		c.MaxAccountFailures = 5
	}
	if c.MaxIPFailures <= 0 {
		c.MaxIPFailures = 20
	}
	if c.Recorder == nil {
		c.Recorder = nopRecorder{}
	}
	return c
}

// Service runs the people use cases over a Store.
type Service struct {
	store  Store
	sealer *seal.Sealer
	clock  mandate.Clock
	log    *slog.Logger
	cfg    Config

	dummyOnce sync.Once
	dummyHash string
}

// NewService returns a Service. A nil clock reads the system clock; a nil
// logger discards.
func NewService(store Store, sealer *seal.Sealer, clock mandate.Clock, logger *slog.Logger, cfg Config) *Service {
	if clock == nil {
		clock = mandate.SystemClock{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, sealer: sealer, clock: clock, log: logger, cfg: cfg.withDefaults()}
}

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// Structure returns a structure by ID.
func (s *Service) Structure(ctx context.Context, id string) (Structure, error) {
	st, err := s.store.GetStructure(ctx, id)
	if err != nil {
		return Structure{}, fmt.Errorf("load structure %s: %w", id, err)
	}
	return st, nil
}

// newToken returns a random 32-byte token, URL-safe, and its SHA-256.
func newToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("random token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok), nil
}

// record records e; Record must not run inside a store transaction.
func (s *Service) record(ctx context.Context, e audit.Event) error {
	if _, err := s.cfg.Recorder.Record(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

func staffActor(id, name string) audit.Actor {
	return audit.Actor{Kind: audit.ActorStaff, ID: id, Name: name}
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}
