package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// testStaffAdmin covers what structure administration stores: ending one
// person's grants and consents whatever the client, cancelling enrolment
// links, the last invitation of pending accounts, the list of structures
// and banners.
func testStaffAdmin(t *testing.T, open Opener) {
	t.Run("RevokeSubjectGrants", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		app := e.createClient(t, "app")
		other := e.createClient(t, "other")
		exp := t0.Add(time.Hour)
		r1 := newRequest("req-1", app, "staff:1", exp)
		r2 := newRequest("req-2", other, "staff:1", exp) // another client: ended too
		r3 := newRequest("req-3", app, "staff:2", exp)   // another person: kept
		r4 := newRequest("req-4", other, "staff:1", exp) // an unused code only
		for _, r := range []*fosite.Request{r1, r2, r3} {
			must(t, e.s.CreateAccessTokenSession(ctx, "at-"+r.ID, r))
			must(t, e.s.CreateRefreshTokenSession(ctx, "rt-"+r.ID, "at-"+r.ID, r))
		}
		must(t, e.s.CreateAuthorizeCodeSession(ctx, "code-req-4", r4))

		ids, err := e.s.RevokeSubjectGrants(ctx, "staff:1")
		must(t, err)
		if !slices.Equal(ids, []string{"req-1", "req-2", "req-4"}) {
			t.Errorf("RevokeSubjectGrants = %v, want [req-1 req-2 req-4]", ids)
		}
		for _, id := range []string{"req-1", "req-2"} {
			_, err = e.s.GetAccessTokenSession(ctx, "at-"+id, nil)
			wantErr(t, err, fosite.ErrInactiveToken)
			_, err = e.s.GetRefreshTokenSession(ctx, "rt-"+id, nil)
			wantErr(t, err, fosite.ErrInactiveToken)
		}
		_, err = e.s.GetAuthorizeCodeSession(ctx, "code-req-4", nil)
		wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		_, err = e.s.GetAccessTokenSession(ctx, "at-req-3", nil)
		must(t, err)
		_, err = e.s.GetRefreshTokenSession(ctx, "rt-req-3", nil)
		must(t, err)

		ids, err = e.s.RevokeSubjectGrants(ctx, "staff:1")
		must(t, err)
		if len(ids) != 0 {
			t.Errorf("second RevokeSubjectGrants touched %v", ids)
		}
	})

	t.Run("DeleteConsentsOf", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		e.createClient(t, "app")
		e.createClient(t, "other")
		for _, c := range []authz.Consent{
			{Subject: "staff:1", ClientID: "app", Scopes: []string{"mail.read"}},
			{Subject: "staff:1", ClientID: "other", Scopes: []string{"mail.read"}},
			{Subject: "staff:2", ClientID: "app", Scopes: []string{"mail.read"}},
		} {
			must(t, e.s.SaveConsent(ctx, c))
		}
		n, err := e.s.DeleteConsentsOf(ctx, "staff:1")
		must(t, err)
		if n != 2 {
			t.Errorf("DeleteConsentsOf = %d, want 2", n)
		}
		if list, err := e.s.ListConsents(ctx, "staff:1"); err != nil || len(list) != 0 {
			t.Errorf("consents left: %v, %v", list, err)
		}
		if list, err := e.s.ListConsents(ctx, "staff:2"); err != nil || len(list) != 1 {
			t.Errorf("another person's consents: %v, %v", list, err)
		}
		if n, err := e.s.DeleteConsentsOf(ctx, "staff:1"); err != nil || n != 0 {
			t.Errorf("again: %d, %v", n, err)
		}
	})

	t.Run("CancelEnrolmentsOfAndLastInvitations", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One"}))
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "Two"}))
		e.createStaff(t, "a", "a@example.org", "s1")
		e.createStaff(t, "b", "b@example.org", "s1")
		e.createStaff(t, "c", "c@example.org", "s2")
		enrol := func(hash, staff string, created time.Time) {
			must(t, e.s.CreateEnrolment(ctx, people.Enrolment{TokenHash: []byte(hash), StaffID: staff,
				CreatedAt: created, ExpiresAt: created.Add(72 * time.Hour)}))
		}
		enrol("a-1", "a", t0)
		enrol("a-2", "a", t0.Add(time.Hour))
		enrol("a-3", "a", t0.Add(2*time.Hour))
		enrol("b-1", "b", t0)
		enrol("c-1", "c", t0)
		now := t0.Add(3 * time.Hour)
		must(t, e.s.CompleteEnrolment(ctx, []byte("a-1"), now, func(*people.Staff) error { return nil })) // used: untouched
		must(t, e.s.UpdateStaff(ctx, "a", func(s *people.Staff) error { s.Status = people.StaffPending; return nil }))

		n, err := e.s.CancelEnrolmentsOf(ctx, "a", []byte("a-3"), now)
		must(t, err)
		if n != 1 {
			t.Errorf("CancelEnrolmentsOf = %d, want 1 (a-2)", n)
		}
		got, err := e.s.GetEnrolment(ctx, []byte("a-2"))
		must(t, err)
		if !got.ExpiresAt.Equal(now) || got.UsedAt != nil {
			t.Errorf("cancelled link = %+v, want expired at %v", got, now)
		}
		for _, h := range []string{"a-3", "b-1", "c-1"} {
			got, err := e.s.GetEnrolment(ctx, []byte(h))
			must(t, err)
			if !got.ExpiresAt.After(now) {
				t.Errorf("%s was cancelled", h)
			}
		}
		// Completing a cancelled link fails like an expired one.
		err = e.s.CompleteEnrolment(ctx, []byte("a-2"), now, func(*people.Staff) error { return nil })
		wantErr(t, err, mandate.ErrConflict)
		if n, err := e.s.CancelEnrolmentsOf(ctx, "b", nil, now); err != nil || n != 1 {
			t.Errorf("cancel every link of b: %d, %v", n, err)
		}

		last, err := e.s.LastInvitations(ctx, "s1")
		must(t, err)
		want := map[string]time.Time{"a": t0.Add(2 * time.Hour), "b": t0}
		if len(last) != len(want) || !last["a"].Equal(want["a"]) || !last["b"].Equal(want["b"]) {
			t.Errorf("LastInvitations(s1) = %v, want %v", last, want)
		}
		must(t, e.s.UpdateStaff(ctx, "b", func(s *people.Staff) error { s.Status = people.StaffActive; return nil }))
		last, err = e.s.LastInvitations(ctx, "s1")
		must(t, err)
		if _, ok := last["b"]; ok || len(last) != 1 {
			t.Errorf("LastInvitations lists an active account: %v", last)
		}
	})

	t.Run("ListStructures", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "Mairie de Tulle"}))
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "CCAS de Brive"}))
		list, err := e.s.ListStructures(ctx)
		must(t, err)
		if len(list) != 2 || list[0].ID != "s1" || list[1].ID != "s2" {
			t.Errorf("ListStructures = %+v, want by name", list)
		}
	})

	t.Run("Banners", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One"}))
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "Two"}))
		day := 24 * time.Hour
		mk := func(id, structure string, aud people.Audience, start, end time.Time) people.Banner {
			b := people.Banner{ID: id, StructureID: structure, Audience: aud, TextFR: "Fermé " + id, TextEN: "Closed " + id,
				StartsAt: start, EndsAt: end, CreatedBy: "admin", CreatedAt: t0}
			must(t, e.s.CreateBanner(ctx, b))
			return b
		}
		current := mk("current", "s1", people.AudienceStaff, t0.Add(-day), t0.Add(day))
		mk("holders", "s1", people.AudienceHolders, t0.Add(-day), t0.Add(day))
		mk("future", "s1", people.AudienceStaff, t0.Add(day), t0.Add(2*day))
		mk("past", "s1", people.AudienceStaff, t0.Add(-2*day), t0)
		mk("other", "s2", people.AudienceStaff, t0.Add(-day), t0.Add(day))
		mk("platform", people.PlatformWide, people.AudienceStaff, t0.Add(-2*day), t0.Add(day))

		got, err := e.s.GetBanner(ctx, "current")
		must(t, err)
		if got != current {
			t.Errorf("GetBanner = %+v, want %+v", got, current)
		}
		_, err = e.s.GetBanner(ctx, "nope")
		wantErr(t, err, mandate.ErrNotFound)

		ids := func(list []people.Banner) []string {
			var out []string
			for _, b := range list {
				out = append(out, b.ID)
			}
			return out
		}
		list, err := e.s.CurrentBanners(ctx, people.AudienceStaff, []string{"s1"}, t0)
		must(t, err)
		if !slices.Equal(ids(list), []string{"platform", "current"}) {
			t.Errorf("CurrentBanners(staff, s1) = %v, want [platform current]", ids(list))
		}
		list, err = e.s.CurrentBanners(ctx, people.AudienceHolders, []string{"s1", "s2"}, t0)
		must(t, err)
		if !slices.Equal(ids(list), []string{"holders"}) {
			t.Errorf("CurrentBanners(holders) = %v", ids(list))
		}
		list, err = e.s.CurrentBanners(ctx, people.AudienceStaff, nil, t0)
		must(t, err)
		if !slices.Equal(ids(list), []string{"platform"}) {
			t.Errorf("CurrentBanners(no structure) = %v", ids(list))
		}
		list, err = e.s.ListBanners(ctx, "s1")
		must(t, err)
		if !slices.Equal(ids(list), []string{"future", "current", "holders", "past"}) {
			t.Errorf("ListBanners(s1) = %v", ids(list))
		}
		list, err = e.s.ListBanners(ctx, people.PlatformWide)
		must(t, err)
		if !slices.Equal(ids(list), []string{"platform"}) {
			t.Errorf("ListBanners(platform) = %v", ids(list))
		}

		current.TextFR, current.TextEN, current.Audience = "Ouvert", "", people.AudienceHolders
		current.EndsAt = t0.Add(3 * day)
		must(t, e.s.UpdateBanner(ctx, current))
		got, err = e.s.GetBanner(ctx, "current")
		must(t, err)
		if got != current {
			t.Errorf("after UpdateBanner = %+v, want %+v", got, current)
		}
		wantErr(t, e.s.UpdateBanner(ctx, people.Banner{ID: "nope", Audience: people.AudienceStaff, TextFR: "x",
			StartsAt: t0, EndsAt: t0.Add(day)}), mandate.ErrNotFound)
		must(t, e.s.DeleteBanner(ctx, "current"))
		wantErr(t, e.s.DeleteBanner(ctx, "current"), mandate.ErrNotFound)
		// The database refuses a banner that ends before it starts.
		if err := e.s.CreateBanner(ctx, people.Banner{ID: "bad", Audience: people.AudienceStaff, TextFR: "x",
			StartsAt: t0, EndsAt: t0.Add(-time.Second), CreatedAt: t0}); err == nil {
			t.Error("a banner ending before it starts was stored")
		}
	})
}
