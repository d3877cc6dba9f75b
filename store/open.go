package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func openPostgres(dsn string, cfg *gorm.Config, maxOpen int) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.Open(dsn), cfg)
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if maxOpen <= 0 {
		maxOpen = 20
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(maxOpen)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// sqlitePragmas apply to every connection: WAL so readers never block the
// writer, foreign keys (off by default in SQLite), a busy timeout for other
// processes sharing the file, and IMMEDIATE transactions so a writer takes
// the write lock up front instead of failing on upgrade.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)"

// openSQLite opens two pools on the same file: one writer connection, so
// writes queue in Go instead of failing with SQLITE_BUSY, and a few
// query-only connections for reads outside transactions.
func openSQLite(dsn string, cfg *gorm.Config, maxReaders int) (w, r *gorm.DB, err error) {
	path, query := sqlitePath(dsn)
	if path == "" {
		return nil, nil, fmt.Errorf("empty sqlite path")
	}
	memory := path == ":memory:" || strings.Contains(query, "mode=memory")
	if !memory && !strings.HasPrefix(path, "file:") {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, nil, fmt.Errorf("create sqlite directory: %w", err)
			}
		}
	}
	base := path + "?" + joinQuery(query, sqlitePragmas)
	w, err = gorm.Open(sqlite.Open(base+"&_txlock=immediate"), cfg)
	if err != nil {
		return nil, nil, err
	}
	wdb, err := w.DB()
	if err != nil {
		return nil, nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if memory {
		// Every connection would see its own empty database.
		return w, w, nil
	}
	r, err = gorm.Open(sqlite.Open(base+"&_pragma=query_only(1)"), cfg)
	if err != nil {
		wdb.Close()
		return nil, nil, err
	}
	rdb, err := r.DB()
	if err != nil {
		wdb.Close()
		return nil, nil, err
	}
	if maxReaders <= 0 {
		maxReaders = 4
	}
	rdb.SetMaxOpenConns(maxReaders)
	rdb.SetMaxIdleConns(maxReaders)
	return w, r, nil
}

// sqlitePath splits "sqlite://path?q", "file:path?q" or "path?q".
func sqlitePath(dsn string) (path, query string) {
	if rest, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		dsn = rest
	} else if rest, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		dsn = rest
	}
	path, query, _ = strings.Cut(dsn, "?")
	return path, query
}

func joinQuery(a, b string) string {
	if a == "" {
		return b
	}
	return a + "&" + b
}
