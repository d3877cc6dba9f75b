package mandate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// EndedSince returns the mandates that ended at or after since (EndedAt ≥
// since), the earliest endings first (EndedAt, then ID), at most limit
// (1..500). A caller wanting more asks again from the last one's EndedAt.
// It serves the resource servers' event stream, which replays endings a
// subscriber may have missed.
//
// The store orders mandates by creation, not by ending, and a mandate may
// end long after it was created (a delegation's window is set in
// advance), so this reads every ended mandate, a page at a time, keeping
// the limit earliest endings. A Query field on EndedAt (and an index)
// would make it one query.
func (s *Service) EndedSince(ctx context.Context, since time.Time, limit int) ([]Mandate, error) {
	if limit < 1 || limit > maxListLimit {
		return nil, fmt.Errorf("mandates ended since %s: %w: limit %d outside 1..%d", since.Format(time.RFC3339), ErrInvalidRequest, limit, maxListLimit)
	}
	byEnding := func(a, b Mandate) int {
		return cmp.Or(a.EndedAt.Compare(b.EndedAt), cmp.Compare(a.ID, b.ID))
	}
	q := Query{States: []State{StateEnded}, Limit: maxListLimit}
	var out []Mandate
	for {
		page, err := s.store.ListMandates(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("mandates ended since %s: %w", since.Format(time.RFC3339), err)
		}
		for _, m := range page {
			if m.State == StateEnded && !m.EndedAt.Before(since) {
				out = append(out, m)
			}
		}
		if len(out) > limit {
			slices.SortFunc(out, byEnding)
			out = out[:limit:limit]
		}
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.BeforeCreated, q.BeforeID = last.CreatedAt, last.ID
	}
	slices.SortFunc(out, byEnding)
	return out, nil
}
