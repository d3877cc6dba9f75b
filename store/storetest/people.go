package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

func (e env) createStaff(t *testing.T, id, email, structureID string) people.Staff {
	t.Helper()
	st := people.Staff{
		ID: id, Email: email, DisplayName: "Person " + id, Role: people.RoleMediator,
		StructureID: structureID, Status: people.StaffPending, CreatedAt: e.clock.Now(),
	}
	must(t, e.s.CreateStaff(t.Context(), st))
	e.clock.Advance(time.Second)
	return st
}

func testStructures(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "France Services Tulle", CreatedAt: t0}))
	got, err := e.s.GetStructure(ctx, "s1")
	must(t, err)
	if got.Name != "France Services Tulle" || !got.CreatedAt.Equal(t0) {
		t.Errorf("GetStructure = %+v", got)
	}
	got, err = e.s.FindStructureByName(ctx, "France Services Tulle")
	must(t, err)
	if got.ID != "s1" {
		t.Errorf("FindStructureByName = %+v", got)
	}
	wantErr(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "France Services Tulle"}), mandate.ErrAlreadyExists)
	wantErr(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "Other"}), mandate.ErrAlreadyExists)
	_, err = e.s.GetStructure(ctx, "nope")
	wantErr(t, err, mandate.ErrNotFound)
	_, err = e.s.FindStructureByName(ctx, "nope")
	wantErr(t, err, mandate.ErrNotFound)
}

func testStaff(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One"}))
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "Two"}))
	e.createStaff(t, "a", "Alice@Example.ORG", "s1")
	e.createStaff(t, "b", "bob@example.org", "s2")
	e.createStaff(t, "c", "carol@example.org", "s1")
	e.createStaff(t, "p", "root@example.org", "") // platform admin outside any structure

	t.Run("email is stored lower-cased and found in any case", func(t *testing.T) {
		st, err := e.s.FindStaffByEmail(ctx, "ALICE@example.org")
		must(t, err)
		if st.ID != "a" || st.Email != "alice@example.org" || st.StructureID != "s1" || st.Role != people.RoleMediator {
			t.Errorf("FindStaffByEmail = %+v", st)
		}
	})
	t.Run("unique and referential errors", func(t *testing.T) {
		wantErr(t, e.s.CreateStaff(ctx, people.Staff{ID: "x", Email: "alice@EXAMPLE.org", Role: people.RoleAdmin, Status: people.StaffPending}), mandate.ErrAlreadyExists)
		wantErr(t, e.s.CreateStaff(ctx, people.Staff{ID: "a", Email: "new@example.org", Role: people.RoleAdmin, Status: people.StaffPending}), mandate.ErrAlreadyExists)
		wantErr(t, e.s.CreateStaff(ctx, people.Staff{ID: "y", Email: "y@example.org", StructureID: "nope", Role: people.RoleAdmin, Status: people.StaffPending}), mandate.ErrNotFound)
		_, err := e.s.GetStaff(ctx, "nope")
		wantErr(t, err, mandate.ErrNotFound)
		_, err = e.s.FindStaffByEmail(ctx, "nope@example.org")
		wantErr(t, err, mandate.ErrNotFound)
	})
	t.Run("count and list", func(t *testing.T) {
		n, err := e.s.CountStaff(ctx)
		must(t, err)
		if n != 4 {
			t.Errorf("CountStaff = %d, want 4", n)
		}
		for _, tt := range []struct {
			structure string
			want      []string
		}{{"s1", []string{"a", "c"}}, {"s2", []string{"b"}}, {"", []string{"a", "b", "c", "p"}}, {"none", nil}} {
			list, err := e.s.ListStaff(ctx, tt.structure)
			must(t, err)
			var ids []string
			for _, st := range list {
				ids = append(ids, st.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ListStaff(%q) = %v, want %v", tt.structure, ids, tt.want)
			}
		}
	})
	t.Run("update", func(t *testing.T) {
		signIn := t0.Add(time.Hour)
		must(t, e.s.UpdateStaff(ctx, "a", func(st *people.Staff) error {
			st.Status = people.StaffActive
			st.PasswordHash = "$argon2id$v=19$..."
			st.SealedTOTP = []byte{9, 9}
			st.LastTOTPStep = 42
			st.LastSignInAt = &signIn
			st.Platform = true
			st.Email = "Alice.New@Example.org"
			st.ID = "attempt-to-rename"
			return nil
		}))
		st, err := e.s.GetStaff(ctx, "a")
		must(t, err)
		if st.Status != people.StaffActive || st.PasswordHash == "" || !slices.Equal(st.SealedTOTP, []byte{9, 9}) ||
			st.LastTOTPStep != 42 || st.LastSignInAt == nil || !st.LastSignInAt.Equal(signIn) || !st.Platform ||
			st.Email != "alice.new@example.org" || st.StructureID != "s1" {
			t.Errorf("after update: %+v", st)
		}
	})
	t.Run("update aborted by fn or conflicts", func(t *testing.T) {
		boom := errors.New("boom")
		err := e.s.UpdateStaff(ctx, "b", func(st *people.Staff) error {
			st.DisplayName = "changed"
			return boom
		})
		wantErr(t, err, boom)
		st, _ := e.s.GetStaff(ctx, "b")
		if st.DisplayName == "changed" {
			t.Error("aborted update was written")
		}
		wantErr(t, e.s.UpdateStaff(ctx, "b", func(st *people.Staff) error { st.Email = "carol@example.org"; return nil }), mandate.ErrAlreadyExists)
		wantErr(t, e.s.UpdateStaff(ctx, "nope", func(*people.Staff) error { return nil }), mandate.ErrNotFound)
	})
	t.Run("concurrent updates do not lose writes", func(t *testing.T) {
		errs := race(func(int) error {
			return e.s.UpdateStaff(ctx, "c", func(st *people.Staff) error { st.LastTOTPStep++; return nil })
		})
		if n := winners(t, errs); n != racers {
			t.Fatalf("%d of %d updates succeeded", n, racers)
		}
		st, err := e.s.GetStaff(ctx, "c")
		must(t, err)
		if st.LastTOTPStep != racers {
			t.Errorf("LastTOTPStep = %d after %d increments", st.LastTOTPStep, racers)
		}
	})
}

func testEnrolments(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	e.createStaff(t, "a", "a@example.org", "")
	e.createStaff(t, "b", "b@example.org", "")
	now := e.clock.Now()
	hashA, hashB, hashOld := []byte("hash-a"), []byte("hash-b"), []byte("hash-old")
	must(t, e.s.CreateEnrolment(ctx, people.Enrolment{TokenHash: hashA, StaffID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	must(t, e.s.CreateEnrolment(ctx, people.Enrolment{TokenHash: hashB, StaffID: "b", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	must(t, e.s.CreateEnrolment(ctx, people.Enrolment{TokenHash: hashOld, StaffID: "b", CreatedAt: now, ExpiresAt: now.Add(-time.Second)}))
	wantErr(t, e.s.CreateEnrolment(ctx, people.Enrolment{TokenHash: hashA, StaffID: "a", ExpiresAt: now}), mandate.ErrAlreadyExists)
	wantErr(t, e.s.CreateEnrolment(ctx, people.Enrolment{TokenHash: []byte("x"), StaffID: "nope", ExpiresAt: now}), mandate.ErrNotFound)

	t.Run("pending TOTP then completion", func(t *testing.T) {
		must(t, e.s.SetEnrolmentPendingTOTP(ctx, hashA, []byte("sealed-1")))
		must(t, e.s.SetEnrolmentPendingTOTP(ctx, hashA, []byte("sealed-2")))
		en, err := e.s.GetEnrolment(ctx, hashA)
		must(t, err)
		if string(en.SealedPendingTOTP) != "sealed-2" || en.StaffID != "a" || en.UsedAt != nil || !en.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("GetEnrolment = %+v", en)
		}
		must(t, e.s.CompleteEnrolment(ctx, hashA, now, func(st *people.Staff) error {
			st.PasswordHash = "phc"
			st.SealedTOTP = en.SealedPendingTOTP
			st.Status = people.StaffActive
			return nil
		}))
		st, err := e.s.GetStaff(ctx, "a")
		must(t, err)
		if st.Status != people.StaffActive || st.PasswordHash != "phc" || string(st.SealedTOTP) != "sealed-2" {
			t.Errorf("staff after enrolment: %+v", st)
		}
		en, err = e.s.GetEnrolment(ctx, hashA)
		must(t, err)
		if en.UsedAt == nil || !en.UsedAt.Equal(now) {
			t.Errorf("UsedAt = %v, want %v", en.UsedAt, now)
		}
	})
	t.Run("used, expired or unknown", func(t *testing.T) {
		noop := func(*people.Staff) error { return nil }
		wantErr(t, e.s.CompleteEnrolment(ctx, hashA, now, noop), mandate.ErrConflict)
		wantErr(t, e.s.SetEnrolmentPendingTOTP(ctx, hashA, []byte("late")), mandate.ErrConflict)
		wantErr(t, e.s.CompleteEnrolment(ctx, hashOld, now, noop), mandate.ErrConflict)
		wantErr(t, e.s.CompleteEnrolment(ctx, hashB, now.Add(time.Hour), noop), mandate.ErrConflict) // expiry is exclusive
		wantErr(t, e.s.CompleteEnrolment(ctx, []byte("nope"), now, noop), mandate.ErrNotFound)
		wantErr(t, e.s.SetEnrolmentPendingTOTP(ctx, []byte("nope"), nil), mandate.ErrNotFound)
		_, err := e.s.GetEnrolment(ctx, []byte("nope"))
		wantErr(t, err, mandate.ErrNotFound)
	})
	t.Run("fn error leaves the enrolment unused", func(t *testing.T) {
		boom := errors.New("boom")
		wantErr(t, e.s.CompleteEnrolment(ctx, hashB, now, func(*people.Staff) error { return boom }), boom)
		en, err := e.s.GetEnrolment(ctx, hashB)
		must(t, err)
		if en.UsedAt != nil {
			t.Error("failed completion used the enrolment")
		}
	})
	t.Run("concurrent completions: one wins", func(t *testing.T) {
		errs := race(func(int) error {
			return e.s.CompleteEnrolment(ctx, hashB, now, func(st *people.Staff) error { st.LastTOTPStep++; return nil })
		})
		if n := winners(t, errs, mandate.ErrConflict); n != 1 {
			t.Fatalf("%d completions succeeded, want 1", n)
		}
		st, _ := e.s.GetStaff(ctx, "b")
		if st.LastTOTPStep != 1 {
			t.Errorf("fn ran %d times", st.LastTOTPStep)
		}
	})
}

func testSignInFailures(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	window := t0.Add(10 * time.Minute)
	for i, at := range []time.Time{t0, window, window.Add(time.Minute)} {
		n, err := e.s.RecordSignInFailure(ctx, "account:a", at, window)
		must(t, err)
		if want := i; n != want { // the failure before the window does not count
			t.Errorf("failure %d: count %d, want %d", i, n, want)
		}
	}
	_, err := e.s.RecordSignInFailure(ctx, "ip:10.0.0.1", window, window)
	must(t, err)
	for _, tt := range []struct {
		key   string
		since time.Time
		want  int
	}{{"account:a", t0, 3}, {"account:a", window, 2}, {"account:a", window.Add(time.Hour), 0}, {"ip:10.0.0.1", t0, 1}, {"nobody", t0, 0}} {
		n, err := e.s.CountSignInFailures(ctx, tt.key, tt.since)
		must(t, err)
		if n != tt.want {
			t.Errorf("CountSignInFailures(%s, %v) = %d, want %d", tt.key, tt.since, n, tt.want)
		}
	}
	must(t, e.s.ClearSignInFailures(ctx, "account:a"))
	if n, _ := e.s.CountSignInFailures(ctx, "account:a", t0); n != 0 {
		t.Errorf("after clear: %d failures", n)
	}
	if n, _ := e.s.CountSignInFailures(ctx, "ip:10.0.0.1", t0); n != 1 {
		t.Errorf("clear touched another key: %d failures", n)
	}
}

func testPruneSignInFailures(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	cutoff := t0.Add(time.Hour)
	record := func(key string, at time.Time) {
		t.Helper()
		_, err := e.s.RecordSignInFailure(ctx, key, at, t0)
		must(t, err)
	}
	record("account:a", t0)
	record("account:a", cutoff.Add(-time.Microsecond))
	record("account:a", cutoff) // not before the cutoff: kept
	record("ip:10.0.0.1", t0.Add(time.Minute))
	record("ip:10.0.0.2", cutoff.Add(time.Minute))

	n, err := e.s.PruneSignInFailures(ctx, cutoff)
	must(t, err)
	if n != 3 {
		t.Errorf("PruneSignInFailures = %d, want 3", n)
	}
	for _, tt := range []struct {
		key  string
		want int
	}{{"account:a", 1}, {"ip:10.0.0.1", 0}, {"ip:10.0.0.2", 1}} {
		if got, err := e.s.CountSignInFailures(ctx, tt.key, t0); err != nil || got != tt.want {
			t.Errorf("after prune, CountSignInFailures(%s) = %d, %v; want %d", tt.key, got, err, tt.want)
		}
	}
	n, err = e.s.PruneSignInFailures(ctx, cutoff)
	must(t, err)
	if n != 0 {
		t.Errorf("second prune = %d, want 0", n)
	}

	// Inside a transaction that is rolled back, the prune is undone.
	txCtx, err := e.s.BeginTX(ctx)
	must(t, err)
	n, err = e.s.PruneSignInFailures(txCtx, cutoff.Add(2*time.Minute))
	must(t, err)
	if n != 2 {
		t.Errorf("prune in transaction = %d, want 2", n)
	}
	must(t, e.s.Rollback(txCtx))
	if got, _ := e.s.CountSignInFailures(ctx, "ip:10.0.0.2", t0); got != 1 {
		t.Errorf("rolled-back prune deleted failures: %d left, want 1", got)
	}
}

func testSessions(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	exp := t0.Add(time.Hour)
	for _, id := range []string{"s1", "s2"} {
		must(t, e.s.CreateSession(ctx, people.Session{IDHash: []byte(id), Subject: "staff:a", CSRFToken: "csrf-" + id, CreatedAt: t0, ExpiresAt: exp}))
	}
	must(t, e.s.CreateSession(ctx, people.Session{IDHash: []byte("s3"), Subject: "staff:b", CSRFToken: "c", CreatedAt: t0, ExpiresAt: exp}))
	wantErr(t, e.s.CreateSession(ctx, people.Session{IDHash: []byte("s1"), Subject: "staff:b", ExpiresAt: exp}), mandate.ErrAlreadyExists)

	got, err := e.s.GetSession(ctx, []byte("s1"), exp.Add(-time.Microsecond))
	must(t, err)
	if got.Subject != "staff:a" || got.CSRFToken != "csrf-s1" || !got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(exp) {
		t.Errorf("GetSession = %+v", got)
	}
	_, err = e.s.GetSession(ctx, []byte("s1"), exp)
	wantErr(t, err, mandate.ErrNotFound)
	_, err = e.s.GetSession(ctx, []byte("nope"), t0)
	wantErr(t, err, mandate.ErrNotFound)

	must(t, e.s.DeleteSession(ctx, []byte("s1")))
	_, err = e.s.GetSession(ctx, []byte("s1"), t0)
	wantErr(t, err, mandate.ErrNotFound)
	wantErr(t, e.s.DeleteSession(ctx, []byte("s1")), mandate.ErrNotFound)

	n, err := e.s.DeleteSessionsOf(ctx, "staff:a")
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteSessionsOf = %d, want 1", n)
	}
	if _, err := e.s.GetSession(ctx, []byte("s3"), t0); err != nil {
		t.Errorf("other subject's session ended: %v", err)
	}
}
