package store

import "testing"

func TestDatabaseURLSelectsDialect(t *testing.T) {
	tests := []struct {
		url         string
		postgres    bool
		path, query string
	}{
		{"postgres://u@h/db", true, "", ""},
		{"POSTGRESQL://u@h/db?sslmode=disable", true, "", ""},
		{"data/mandated.db", false, "data/mandated.db", ""},
		{"sqlite://data/m.db", false, "data/m.db", ""},
		{"sqlite:///var/lib/m.db?_pragma=cache_size(-2000)", false, "/var/lib/m.db", "_pragma=cache_size(-2000)"},
		{"file:m.db?mode=rwc", false, "file:m.db", "mode=rwc"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			if got := isPostgresURL(tt.url); got != tt.postgres {
				t.Fatalf("isPostgresURL = %v, want %v", got, tt.postgres)
			}
			if tt.postgres {
				return
			}
			path, query := sqlitePath(tt.url)
			if path != tt.path || query != tt.query {
				t.Errorf("sqlitePath = %q, %q; want %q, %q", path, query, tt.path, tt.query)
			}
		})
	}
}
