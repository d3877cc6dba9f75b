// Package pgbus carries revocations between the replicas of mandated that
// share a PostgreSQL database, with LISTEN/NOTIFY: Bus implements
// authz.RevocationBus. Each bus publishes through the application's
// connection pool and listens on one dedicated connection of its own, which
// it reopens with backoff when it drops. The channel is named after the
// current schema, so deployments (or tests) in different schemas of one
// database do not hear each other.
package pgbus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mandated/mandated/authz"
)

// Channel prefixes the NOTIFY channel: the bus listens on
// "mandated_revocations.<schema>" (with a hash of the schema instead when
// that would exceed PostgreSQL's 63-byte identifiers).
const Channel = "mandated_revocations"

// FlushAll is the message subscribers receive, instead of a request ID, when
// they may have missed revocations: each time the listening connection is
// (re)established, including the first time, since nothing published while
// the bus was not listening will ever arrive. A subscriber holding a cache
// must drop all of it on FlushAll.
const FlushAll = authz.FlushAll

var _ authz.RevocationBus = (*Bus)(nil)

// Options tune a Bus; the zero value works.
type Options struct {
	// Logger receives connection losses (warn) and reconnections (info);
	// slog.Default() when nil.
	Logger *slog.Logger
	// ApplicationName names the listening connection in pg_stat_activity;
	// "mandated-revocations" when empty.
	ApplicationName string
	// MinBackoff and MaxBackoff bound the wait before reconnecting, which
	// doubles after each failure and resets once listening again
	// (defaults 100ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how long the listener waits for a notification before
	// checking that its connection still answers (default 30s), so a silent
	// network failure is noticed.
	PingInterval time.Duration
}

// Bus is a PostgreSQL RevocationBus. Publish and Subscribe are safe for
// concurrent use; Run listens until Close or its context ends.
type Bus struct {
	db      *sql.DB
	cfg     *pgx.ConnConfig
	channel string
	id      string // tells this bus's own notifications apart
	opts    Options
	log     *slog.Logger

	mu   sync.RWMutex
	subs []func(string)

	running   atomic.Bool
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a bus on the database of dsn, publishing through db (a pool
// on the same database and search_path). Call Run to start listening.
func New(ctx context.Context, dsn string, db *sql.DB, opts Options) (*Bus, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ApplicationName == "" {
		opts.ApplicationName = "mandated-revocations"
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 30 * time.Second
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("revocation bus: parse database URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = opts.ApplicationName
	if cfg.ConnectTimeout == 0 { // no connect_timeout in the URL
		cfg.ConnectTimeout = 10 * time.Second
	}
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return nil, fmt.Errorf("revocation bus: current schema: %w", err)
	}
	if !schema.Valid {
		return nil, errors.New("revocation bus: no current schema (does the search_path schema exist?)")
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("revocation bus: %w", err)
	}
	b := &Bus{
		db: db, cfg: cfg, channel: channelFor(schema.String), id: hex.EncodeToString(id[:]),
		opts: opts, stop: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{}),
	}
	b.log = opts.Logger.With("channel", b.channel)
	return b, nil
}

// channelFor names the channel of schema, within 63 bytes.
func channelFor(schema string) string {
	if c := Channel + "." + schema; len(c) <= 63 {
		return c
	}
	sum := sha256.Sum256([]byte(schema))
	return Channel + "." + hex.EncodeToString(sum[:16])
}

// Channel returns the NOTIFY channel of the bus.
func (b *Bus) Channel() string { return b.channel }

// Subscribe registers fn for every revoked request ID ("client:<id>" for a
// deleted client) and for FlushAll. fn runs on the listener's goroutine or
// on Publish's caller, possibly concurrently: it must be safe for that and
// return quickly.
func (b *Bus) Subscribe(fn func(requestID string)) {
	b.mu.Lock()
	b.subs = append(b.subs[:len(b.subs):len(b.subs)], fn)
	b.mu.Unlock()
}

func (b *Bus) deliver(ids []string) {
	b.mu.RLock()
	subs := b.subs
	b.mu.RUnlock()
	for _, id := range ids {
		for _, fn := range subs {
			fn(id)
		}
	}
}

// Publish calls this process's subscribers with requestIDs, then notifies
// the other buses on the channel in one statement (so in one transaction:
// they hear all of it or none). IDs are split over several notifications
// when they exceed MaxPayload; an ID too long for any notification is only
// delivered locally and reported in the error. Publishing FlushAll makes
// every replica drop its whole cache.
func (b *Bus) Publish(ctx context.Context, requestIDs ...string) error {
	if len(requestIDs) == 0 {
		return nil
	}
	b.deliver(requestIDs)
	payloads, encErr := encode(b.id, requestIDs)
	if len(payloads) > 0 {
		_, err := b.db.ExecContext(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", b.channel, payloads)
		if err != nil {
			return fmt.Errorf("publish %d revocations on %s: %w", len(requestIDs), b.channel, errors.Join(err, encErr))
		}
	}
	if encErr != nil {
		return fmt.Errorf("publish revocations on %s: %w", b.channel, encErr)
	}
	return nil
}

// Ready is closed once the bus listens for the first time.
func (b *Bus) Ready() <-chan struct{} { return b.ready }

// Run listens until ctx ends or Close is called, reconnecting with backoff
// whenever the connection drops, and returns nil then. Call it once.
func (b *Bus) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("revocation bus: Run called twice")
	}
	defer close(b.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := b.opts.MinBackoff
	for {
		err := b.listen(ctx, func() { backoff = b.opts.MinBackoff })
		if ctx.Err() != nil {
			return nil
		}
		delay := backoff/2 + mrand.N(backoff/2+1)
		b.log.Warn("revocation listener down; reconnecting", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, b.opts.MaxBackoff)
	}
}

// Close stops Run and waits for it to return. Publish keeps working (it
// uses the pool), but this process no longer hears other replicas.
func (b *Bus) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	if b.running.Load() {
		<-b.done
	}
	return nil
}

// listen holds one listening connection until it fails or ctx ends.
func (b *Bus) listen(ctx context.Context, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, b.cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	pid := conn.PgConn().PID()
	b.log.Info("listening for revocations", "backend_pid", pid)
	listening()
	b.deliver([]string{FlushAll})
	b.readyOnce.Do(func() { close(b.ready) })
	for {
		wctx, cancel := context.WithTimeout(ctx, b.opts.PingInterval)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && timedOut && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, b.opts.PingInterval)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping backend %d: %w", pid, err)
			}
		case err != nil:
			return fmt.Errorf("wait for notification on backend %d: %w", pid, err)
		default:
			b.receive(n.Payload)
		}
	}
}

func (b *Bus) receive(payload string) {
	m, err := decode(payload)
	if err != nil {
		b.log.Warn("ignoring malformed revocation notification", "err", err)
		return
	}
	if m.From == b.id {
		return // delivered locally by Publish
	}
	b.deliver(m.IDs)
}
