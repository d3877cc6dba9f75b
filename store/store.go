// Package store persists mandated's state with gorm on SQLite (pure Go driver)
// or PostgreSQL. One *Store implements authz.Storage (fosite's storage
// interfaces plus clients, keys, consents, grants and RFC 7523 trusts) and
// people.Store. The schema comes from package migrations, applied by Migrate;
// the conformance suite in store/storetest runs against both dialects.
//
// Methods use the transaction BeginTX put in their context when there is
// one. SQLite has a single writer connection (writes queue instead of failing
// with SQLITE_BUSY) plus read-only connections for reads outside
// transactions: while a transaction is open, write only through its context,
// including from the callbacks of UpdateStaff and CompleteEnrolment, or the
// write waits for a connection that transaction holds.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"gorm.io/gorm"
)

// Dialect names returned by (*Store).Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

var (
	_ authz.Storage     = (*Store)(nil)
	_ people.Store      = (*Store)(nil)
	_ mandate.Store     = (*Store)(nil)
	_ authz.DeviceStore = (*Store)(nil)
)

// Options tune a Store; the zero value works.
type Options struct {
	// Clock tells the time for expiry checks (used JWT IDs, trusts) and
	// default timestamps; mandate.SystemClock when nil.
	Clock mandate.Clock
	// Logger receives SQL traces at debug level and migration progress at
	// info level; slog.Default() when nil.
	Logger *slog.Logger
	// MaxOpenConns caps PostgreSQL connections (default 20); for SQLite it
	// caps the read-only connections (default 4). SQLite always has a single
	// writer connection.
	MaxOpenConns int
}

// Store is the gorm persistence layer. It is safe for concurrent use.
type Store struct {
	dialect string
	dsn     string   // PostgreSQL URL, for the revocation bus's own connection
	db      *gorm.DB // writes and transactions (one connection on SQLite)
	rdb     *gorm.DB // reads outside transactions (== db on PostgreSQL)
	clock   mandate.Clock
	log     *slog.Logger
}

// Open connects to databaseURL: a postgres:// or postgresql:// URL selects
// PostgreSQL; anything else is an SQLite file path, a sqlite://path URL or a
// file: URI. It does not migrate; call Migrate.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	if opts.Clock == nil {
		opts.Clock = mandate.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{clock: opts.Clock, log: opts.Logger}
	var err error
	if isPostgresURL(databaseURL) {
		s.dialect = DialectPostgres
		s.dsn = databaseURL
		s.db, err = openPostgres(databaseURL, s.gormConfig(), opts.MaxOpenConns)
		s.rdb = s.db
	} else {
		s.dialect = DialectSQLite
		s.db, s.rdb, err = openSQLite(databaseURL, s.gormConfig(), opts.MaxOpenConns)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", s.dialect, err)
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func isPostgresURL(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

func (s *Store) gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 slogGormLogger{log: s.log},
		TranslateError:         true,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return utc(s.clock.Now()) },
	}
}

// Dialect returns DialectSQLite or DialectPostgres.
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	for _, g := range s.pools() {
		sqlDB, err := g.DB()
		if err != nil {
			return fmt.Errorf("ping %s: %w", s.dialect, err)
		}
		if err := sqlDB.PingContext(ctx); err != nil {
			return fmt.Errorf("ping %s: %w", s.dialect, err)
		}
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error {
	var errs []error
	for _, g := range s.pools() {
		if sqlDB, err := g.DB(); err == nil {
			errs = append(errs, sqlDB.Close())
		}
	}
	return errors.Join(errs...)
}

func (s *Store) pools() []*gorm.DB {
	if s.rdb == s.db {
		return []*gorm.DB{s.db}
	}
	return []*gorm.DB{s.db, s.rdb}
}

func (s *Store) now() time.Time { return utc(s.clock.Now()) }

// utc normalises a time for storage: UTC, microsecond precision (what
// PostgreSQL keeps), so both dialects return the same value.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := utc(*t)
	return &u
}
