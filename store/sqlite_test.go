package store_test

import (
	"path/filepath"
	"testing"

	"github.com/mandated/mandated/authz"

	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.RunTests(t, func(t testing.TB, opts store.Options) *store.Store {
		return storetest.OpenSQLiteWith(t, opts)
	})
}

// TestSQLiteSurvivesRestart reopens the file a sqlite:// URL named and finds
// what was written before, with the directory created on first open.
func TestSQLiteSurvivesRestart(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "data", "mandated.db")
	open := func() *store.Store {
		s, err := store.Open(t.Context(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s.Dialect() != store.DialectSQLite {
			t.Fatalf("Dialect() = %q", s.Dialect())
		}
		return s
	}
	s := open()
	if err := s.CreateClient(t.Context(), &authz.Client{ID: "app", Name: "App", AuthMethod: authz.AuthMethodNone}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	if _, err := s.GetClient(t.Context(), "app"); err != nil {
		t.Fatalf("client lost across restart: %v", err)
	}
}
