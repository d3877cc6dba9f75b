package people_test

import (
	"fmt"
	"testing"

	"github.com/mandated/mandated/people"
)

// BenchmarkHolderConsole measures what the console's list of holders asks
// of the service, with 10,000 holders in the structure (and 10,000 in
// another) on SQLite: a page of 50, a page after a cursor, a search, and the
// count.
func BenchmarkHolderConsole(b *testing.B) {
	e := newHoldersEnv(b, nil, nil)
	ctx := b.Context()
	tx, err := e.store.BeginTX(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []string{"A", "B"} {
		for i := range 10000 {
			h := people.Holder{ID: fmt.Sprintf("%s-%05d", s, i), Mailbox: fmt.Sprintf("%s-%05d@example.org", s, i),
				DisplayName: fmt.Sprintf("Personne %d", i), Email: "x@example.net", Language: "fr", CreatedAt: e.clock.Now()}
			if err := e.store.CreateHolder(tx, h, s); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := e.store.Commit(tx); err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name string
		q    people.HolderQuery
	}{
		{"first-page", people.HolderQuery{Limit: 50}},
		{"after-cursor", people.HolderQuery{Limit: 50, After: "a-05000@example.org"}},
		{"search", people.HolderQuery{Limit: 50, Search: "personne 99"}},
	} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				page, err := e.h.List(ctx, e.medA, "A", q.q)
				if err != nil || len(page.Holders) == 0 {
					b.Fatalf("%+v, %v", page, err)
				}
			}
		})
	}
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			if n, err := e.h.Count(ctx, e.medA, "A"); err != nil || n != 10000 {
				b.Fatalf("%d, %v", n, err)
			}
		}
	})
}
