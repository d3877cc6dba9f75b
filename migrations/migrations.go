// Package migrations holds the database schema as SQL migrations, one
// directory per dialect (sqlite/, postgres/), in goose format and embedded in
// the binary. Package store applies them with goose; nothing else creates
// tables (no gorm AutoMigrate).
package migrations

import "embed"

// SQLite holds sqlite/*.sql; pass fs.Sub(SQLite, "sqlite") to goose.
//
//go:embed sqlite/*.sql
var SQLite embed.FS

// Postgres holds postgres/*.sql; pass fs.Sub(Postgres, "postgres") to goose.
//
//go:embed postgres/*.sql
var Postgres embed.FS
