package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/mandated/mandated/migrations"
	"github.com/pressly/goose/v3"
)

// Migrate applies every pending migration of the store's dialect. It is safe
// to call on every start; on PostgreSQL it holds an advisory lock (one per
// schema) so replicas starting together migrate one after the other.
func (s *Store) Migrate(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dialect, fsys, err := s.migrationSource()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if s.dialect == DialectPostgres {
		unlock, err := advisoryLock(ctx, sqlDB)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer unlock()
	}
	p, err := goose.NewProvider(dialect, sqlDB, fsys, goose.WithSlog(s.log), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", s.dialect, err)
	}
	return nil
}

func (s *Store) migrationSource() (goose.Dialect, fs.FS, error) {
	if s.dialect == DialectPostgres {
		fsys, err := fs.Sub(migrations.Postgres, "postgres")
		return goose.DialectPostgres, fsys, err
	}
	fsys, err := fs.Sub(migrations.SQLite, "sqlite")
	return goose.DialectSQLite3, fsys, err
}

// advisoryLock takes a session-level PostgreSQL advisory lock on a dedicated
// connection, keyed by the current schema, and returns its release.
func advisoryLock(ctx context.Context, db *sql.DB) (func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("advisory lock: %w", err)
	}
	const key = "hashtext('mandated.migrate.' || current_schema())"
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+key+")"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("advisory lock: %w", err)
	}
	return func() {
		// Closing the connection would release the lock too; unlock
		// explicitly so a pooled connection never keeps it.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")")
		conn.Close()
	}, nil
}
