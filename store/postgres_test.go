package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// TestPostgres runs the suite on MANDATED_TEST_DATABASE_URL, each store in a
// schema of its own; skipped without it unless MANDATED_REQUIRE_POSTGRES=1.
func TestPostgres(t *testing.T) {
	storetest.RunTests(t, func(t testing.TB, opts store.Options) *store.Store {
		return storetest.OpenPostgresWith(t, opts)
	})
}

// TestPostgresReplicasMigrateTogether starts two stores on one empty schema
// and migrates both at once, as two replicas starting together would.
func TestPostgresReplicasMigrateTogether(t *testing.T) {
	dsn := storetest.PostgresSchema(t)
	var stores [2]*store.Store
	for i := range stores {
		s, err := store.Open(t.Context(), dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Migrate(context.WithoutCancel(t.Context()))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: migrate: %v", i, err)
		}
	}
	if _, err := stores[0].ListClients(t.Context()); err != nil {
		t.Errorf("schema unusable after concurrent migrations: %v", err)
	}
}
