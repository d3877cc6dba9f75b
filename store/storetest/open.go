package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/mandated/mandated/store"
)

// Environment variables read by the PostgreSQL helpers.
const (
	// EnvDatabaseURL is the PostgreSQL server tests create their schemas in.
	EnvDatabaseURL = "MANDATED_TEST_DATABASE_URL"
	// EnvRequirePostgres=1 turns a missing EnvDatabaseURL into a failure
	// instead of a skip (CI sets it so the PostgreSQL suite cannot silently vanish).
	EnvRequirePostgres = "MANDATED_REQUIRE_POSTGRES"
)

// OpenSQLite returns a migrated store on a fresh SQLite file under
// t.TempDir(), closed when the test ends.
func OpenSQLite(t testing.TB) *store.Store { return OpenSQLiteWith(t, store.Options{}) }

// OpenSQLiteWith is OpenSQLite with options (a test clock, say).
func OpenSQLiteWith(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	return openMigrated(t, filepath.Join(t.TempDir(), "mandated.db"), opts)
}

// OpenPostgres returns a migrated store in a fresh schema of the database at
// MANDATED_TEST_DATABASE_URL, dropped when the test ends. Without that
// variable the test is skipped, or fails when MANDATED_REQUIRE_POSTGRES=1.
func OpenPostgres(t testing.TB) *store.Store { return OpenPostgresWith(t, store.Options{}) }

// OpenPostgresWith is OpenPostgres with options.
func OpenPostgresWith(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	return openMigrated(t, PostgresSchema(t), opts)
}

func openMigrated(t testing.TB, dsn string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// PostgresSchema creates an empty schema with a random name in the database
// at MANDATED_TEST_DATABASE_URL and returns a URL whose search_path selects
// it; the schema is dropped when the test ends. It skips or fails like
// OpenPostgres when the variable is unset.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(b[:])
	u := schemaURL(t, schema, "CREATE SCHEMA ")
	t.Cleanup(func() { execAdmin(t, os.Getenv(EnvDatabaseURL), "DROP SCHEMA "+schema+" CASCADE") })
	return u
}

// OpenKept opens, migrated, a store that outlives the test, for benchmarks
// whose data takes minutes to make: on SQLite the file name+".db" in the
// system's temporary directory, on PostgreSQL the schema name (lower-case
// letters, digits and _), created when missing and never dropped.
func OpenKept(t testing.TB, postgres bool, name string) *store.Store {
	t.Helper()
	if !postgres {
		return openMigrated(t, filepath.Join(os.TempDir(), name+".db"), store.Options{})
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			t.Fatalf("kept schema %q: only lower-case letters, digits and _", name)
		}
	}
	return openMigrated(t, schemaURL(t, name, "CREATE SCHEMA IF NOT EXISTS "), store.Options{})
}

// schemaURL runs create+schema on the database at MANDATED_TEST_DATABASE_URL
// and returns a URL whose search_path selects schema. It skips the test
// when the variable is unset, or fails it when MANDATED_REQUIRE_POSTGRES=1.
func schemaURL(t testing.TB, schema, create string) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		if os.Getenv(EnvRequirePostgres) == "1" {
			t.Fatalf("%s is not set but %s=1: the PostgreSQL suite must run", EnvDatabaseURL, EnvRequirePostgres)
		}
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", EnvDatabaseURL)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvDatabaseURL, err)
	}
	execAdmin(t, base, create+schema)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func execAdmin(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx := context.Background() // also used in cleanups, after t.Context() ends
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
