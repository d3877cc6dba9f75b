package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// testAccount covers people.AccountStore: what the session list shows of
// each session, and password-reset links.
func testAccount(t *testing.T, open Opener) {
	t.Run("sessions keep where they come from and when they were last used", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		exp := t0.Add(12 * time.Hour)
		must(t, e.s.CreateSession(ctx, people.Session{
			IDHash: []byte("s1"), Subject: "staff:a", CSRFToken: "c1", CreatedAt: t0, ExpiresAt: exp,
			IP: "2001:db8::7", Browser: "Firefox", OS: "Android",
		}))
		got, err := e.s.GetSession(ctx, []byte("s1"), t0)
		must(t, err)
		if got.IP != "2001:db8::7" || got.Browser != "Firefox" || got.OS != "Android" {
			t.Errorf("GetSession client = %q %q %q", got.IP, got.Browser, got.OS)
		}
		if !got.LastSeenAt.Equal(t0) {
			t.Errorf("LastSeenAt of a new session = %v, want its creation %v", got.LastSeenAt, t0)
		}

		later := t0.Add(5 * time.Minute)
		must(t, e.s.TouchSession(ctx, []byte("s1"), later))
		// An older time (a slow concurrent request) never moves it back.
		must(t, e.s.TouchSession(ctx, []byte("s1"), t0.Add(time.Minute)))
		got, err = e.s.GetSession(ctx, []byte("s1"), later)
		must(t, err)
		if !got.LastSeenAt.Equal(later) {
			t.Errorf("LastSeenAt = %v, want %v", got.LastSeenAt, later)
		}
		wantErr(t, e.s.TouchSession(ctx, []byte("gone"), later), mandate.ErrNotFound)
	})

	t.Run("expired sessions are pruned, live ones stay", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		must(t, e.s.CreateSession(ctx, people.Session{IDHash: []byte("gone"), Subject: "staff:a", CSRFToken: "c", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
		must(t, e.s.CreateSession(ctx, people.Session{IDHash: []byte("live"), Subject: "staff:a", CSRFToken: "c", CreatedAt: t0, ExpiresAt: t0.Add(3 * time.Hour)}))
		n, err := e.s.PruneSessions(ctx, t0.Add(2*time.Hour))
		must(t, err)
		if n != 1 {
			t.Errorf("PruneSessions removed %d rows, want 1", n)
		}
		wantErr(t, e.s.DeleteSession(ctx, []byte("gone")), mandate.ErrNotFound)
		if _, err := e.s.GetSession(ctx, []byte("live"), t0.Add(2*time.Hour)); err != nil {
			t.Errorf("live session: %v", err)
		}
	})

	t.Run("a subject's list holds its live sessions only", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		add := func(id, subject string, created time.Time, ttl time.Duration) {
			must(t, e.s.CreateSession(ctx, people.Session{IDHash: []byte(id), Subject: subject, CSRFToken: "c", CreatedAt: created, ExpiresAt: created.Add(ttl)}))
		}
		add("old", "staff:a", t0, time.Hour)
		add("new", "staff:a", t0.Add(time.Minute), time.Hour)
		add("expired", "staff:a", t0.Add(-2*time.Hour), time.Hour)
		add("other", "staff:b", t0, time.Hour)
		add("holder", "holder:a", t0, time.Hour)

		list, err := e.s.ListSessionsOf(ctx, "staff:a", t0.Add(2*time.Minute))
		must(t, err)
		var ids []string
		for _, s := range list {
			ids = append(ids, string(s.IDHash))
			if s.Subject != "staff:a" {
				t.Errorf("list of staff:a holds a session of %s", s.Subject)
			}
		}
		if len(ids) != 2 || ids[0] != "new" || ids[1] != "old" {
			t.Errorf("ListSessionsOf = %v, want [new old]", ids)
		}
		list, err = e.s.ListSessionsOf(ctx, "staff:nobody", t0)
		must(t, err)
		if len(list) != 0 {
			t.Errorf("ListSessionsOf an unknown subject = %d sessions", len(list))
		}
	})

	t.Run("a reset link is single use, expires, and a new one cancels the older", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One"}))
		e.createStaff(t, "a", "alice@example.org", "s1")
		e.createStaff(t, "b", "bob@example.org", "s1")
		exp := t0.Add(30 * time.Minute)
		reset := func(hash, staff string) people.PasswordReset {
			return people.PasswordReset{TokenHash: []byte(hash), StaffID: staff, CreatedAt: t0, ExpiresAt: exp}
		}
		must(t, e.s.CreatePasswordReset(ctx, reset("r1", "a")))
		must(t, e.s.CreatePasswordReset(ctx, reset("rb", "b")))
		got, err := e.s.GetPasswordReset(ctx, []byte("r1"))
		must(t, err)
		if got.StaffID != "a" || !got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(exp) || got.UsedAt != nil {
			t.Errorf("GetPasswordReset = %+v", got)
		}
		wantErr(t, e.s.CreatePasswordReset(ctx, reset("rx", "nobody")), mandate.ErrNotFound)

		// A second link for a cancels the first, not b's.
		must(t, e.s.CreatePasswordReset(ctx, reset("r2", "a")))
		_, err = e.s.GetPasswordReset(ctx, []byte("r1"))
		wantErr(t, err, mandate.ErrNotFound)
		_, err = e.s.GetPasswordReset(ctx, []byte("rb"))
		must(t, err)

		// fn's error aborts: the link stays unused, the account unchanged.
		boom := errors.New("wrong code")
		err = e.s.CompletePasswordReset(ctx, []byte("r2"), t0, func(st *people.Staff) error {
			st.PasswordHash = "changed"
			return boom
		})
		wantErr(t, err, boom)
		got, err = e.s.GetPasswordReset(ctx, []byte("r2"))
		must(t, err)
		if got.UsedAt != nil {
			t.Errorf("a failed completion used the link: %+v", got)
		}
		if st, _ := e.s.GetStaff(ctx, "a"); st.PasswordHash == "changed" {
			t.Error("a failed completion changed the account")
		}

		// Expired at ExpiresAt.
		wantErr(t, e.s.CompletePasswordReset(ctx, []byte("r2"), exp, func(*people.Staff) error { return nil }), mandate.ErrConflict)
		must(t, e.s.CompletePasswordReset(ctx, []byte("r2"), t0.Add(time.Minute), func(st *people.Staff) error {
			if st.ID != "a" {
				t.Errorf("fn got account %s, want a", st.ID)
			}
			st.PasswordHash = "new-hash"
			return nil
		}))
		if st, _ := e.s.GetStaff(ctx, "a"); st.PasswordHash != "new-hash" {
			t.Errorf("password hash = %q after completion", st.PasswordHash)
		}
		got, err = e.s.GetPasswordReset(ctx, []byte("r2"))
		must(t, err)
		if got.UsedAt == nil || !got.UsedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("UsedAt = %v", got.UsedAt)
		}
		wantErr(t, e.s.CompletePasswordReset(ctx, []byte("r2"), t0.Add(time.Minute), func(*people.Staff) error { return nil }), mandate.ErrConflict)
		wantErr(t, e.s.CompletePasswordReset(ctx, []byte("nope"), t0, func(*people.Staff) error { return nil }), mandate.ErrNotFound)

		// A used link is history, not an "older unused" one: it stays.
		must(t, e.s.CreatePasswordReset(ctx, reset("r3", "a")))
		if _, err := e.s.GetPasswordReset(ctx, []byte("r2")); err != nil {
			t.Errorf("the used link went with a new request: %v", err)
		}
	})

	t.Run("concurrent completions of one link: exactly one wins", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One"}))
		e.createStaff(t, "a", "alice@example.org", "s1")
		must(t, e.s.CreatePasswordReset(ctx, people.PasswordReset{TokenHash: []byte("r"), StaffID: "a", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				errs[i] = e.s.CompletePasswordReset(ctx, []byte("r"), t0, func(st *people.Staff) error {
					st.PasswordHash = "h"
					return nil
				})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, mandate.ErrConflict):
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d completions succeeded, want 1", won)
		}
	})
}
