package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

func testPasskeys(t *testing.T, open Opener) {
	t.Run("CreateGetListDelete", func(t *testing.T) { testPasskeyCRUD(t, open) })
	t.Run("RecordUse", func(t *testing.T) { testPasskeyUse(t, open) })
	t.Run("CeremonySingleUse", func(t *testing.T) { testPasskeyCeremony(t, open) })
	t.Run("CeremonyConcurrentTake", func(t *testing.T) { testPasskeyCeremonyRace(t, open) })
	t.Run("Enrolment", func(t *testing.T) { testPasskeyEnrolment(t, open) })
}

func newPasskey(id, owner string, at time.Time) people.Passkey {
	return people.Passkey{
		CredentialID: []byte("cred-" + id), Owner: owner, UserHandle: []byte("handle-" + owner),
		PublicKey: []byte("cose-key-" + id), AttestationFormat: "none", AAGUID: bytes.Repeat([]byte{7}, 16),
		SignCount: 3, Transports: []string{"internal", "hybrid"}, UserVerified: true,
		BackupEligible: true, BackupState: false, Name: "Téléphone " + id, CreatedAt: at,
	}
}

func testPasskeyCRUD(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	a := newPasskey("a", "holder:h1", t0)
	b := newPasskey("b", "holder:h1", t0.Add(time.Minute))
	c := newPasskey("c", "staff:s1", t0)
	for _, p := range []people.Passkey{b, a, c} {
		must(t, e.s.CreatePasskey(ctx, p))
	}
	dup := newPasskey("a", "staff:s1", t0)
	wantErr(t, e.s.CreatePasskey(ctx, dup), mandate.ErrAlreadyExists)

	got, err := e.s.GetPasskey(ctx, a.CredentialID)
	must(t, err)
	if got.Owner != a.Owner || !bytes.Equal(got.UserHandle, a.UserHandle) || !bytes.Equal(got.PublicKey, a.PublicKey) ||
		!bytes.Equal(got.AAGUID, a.AAGUID) || got.SignCount != 3 || !slices.Equal(got.Transports, a.Transports) ||
		!got.UserVerified || !got.BackupEligible || got.BackupState || got.Name != a.Name ||
		got.AttestationFormat != "none" || !got.CreatedAt.Equal(t0) || got.LastUsedAt != nil {
		t.Errorf("GetPasskey = %+v, want %+v", got, a)
	}
	_, err = e.s.GetPasskey(ctx, []byte("nope"))
	wantErr(t, err, mandate.ErrNotFound)

	list, err := e.s.ListPasskeys(ctx, "holder:h1")
	must(t, err)
	if len(list) != 2 || list[0].Name != a.Name || list[1].Name != b.Name {
		t.Fatalf("ListPasskeys = %+v, want a then b", list)
	}
	list, err = e.s.ListPasskeys(ctx, "holder:nobody")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListPasskeys(nobody) = %d passkeys", len(list))
	}

	// Only the owner's delete removes it.
	wantErr(t, e.s.DeletePasskey(ctx, "staff:s1", a.CredentialID), mandate.ErrNotFound)
	must(t, e.s.DeletePasskey(ctx, "holder:h1", a.CredentialID))
	wantErr(t, e.s.DeletePasskey(ctx, "holder:h1", a.CredentialID), mandate.ErrNotFound)
	_, err = e.s.GetPasskey(ctx, a.CredentialID)
	wantErr(t, err, mandate.ErrNotFound)
}

func testPasskeyUse(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	p := newPasskey("u", "holder:h1", t0)
	must(t, e.s.CreatePasskey(ctx, p))
	at := t0.Add(time.Hour)
	must(t, e.s.RecordPasskeyUse(ctx, p.CredentialID, 3, 4, true, at))
	got, err := e.s.GetPasskey(ctx, p.CredentialID)
	must(t, err)
	if got.SignCount != 4 || !got.BackupState || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
		t.Errorf("after use: %+v", got)
	}
	// A use based on a stale count loses: another use came first.
	wantErr(t, e.s.RecordPasskeyUse(ctx, p.CredentialID, 3, 5, true, at), mandate.ErrConflict)
	got, _ = e.s.GetPasskey(ctx, p.CredentialID)
	if got.SignCount != 4 {
		t.Errorf("stale use changed the count to %d", got.SignCount)
	}
	wantErr(t, e.s.RecordPasskeyUse(ctx, []byte("gone"), 0, 1, false, at), mandate.ErrNotFound)
	// Authenticators without a counter always report 0.
	z := newPasskey("z", "holder:h1", t0)
	z.SignCount = 0
	must(t, e.s.CreatePasskey(ctx, z))
	must(t, e.s.RecordPasskeyUse(ctx, z.CredentialID, 0, 0, false, at))
	must(t, e.s.RecordPasskeyUse(ctx, z.CredentialID, 0, 0, false, at.Add(time.Minute)))
}

func testPasskeyCeremony(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	c := people.PasskeyCeremony{
		IDHash: []byte("ceremony-1"), Owner: "staff:s1", Purpose: "staff-signin", Data: []byte(`{"challenge":"x"}`),
		CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute),
	}
	must(t, e.s.CreatePasskeyCeremony(ctx, c))
	wantErr(t, e.s.CreatePasskeyCeremony(ctx, c), mandate.ErrAlreadyExists)

	got, err := e.s.TakePasskeyCeremony(ctx, c.IDHash, t0.Add(time.Minute))
	must(t, err)
	if got.Owner != c.Owner || got.Purpose != c.Purpose || string(got.Data) != string(c.Data) ||
		!got.ExpiresAt.Equal(c.ExpiresAt) || got.UsedAt == nil {
		t.Errorf("TakePasskeyCeremony = %+v", got)
	}
	// Used: refused, but the caller learns whose it was (to record it).
	again, err := e.s.TakePasskeyCeremony(ctx, c.IDHash, t0.Add(time.Minute))
	wantErr(t, err, mandate.ErrConflict)
	if again.Owner != "staff:s1" {
		t.Errorf("used ceremony owner = %q", again.Owner)
	}
	_, err = e.s.TakePasskeyCeremony(ctx, []byte("unknown"), t0)
	wantErr(t, err, mandate.ErrNotFound)

	// Expired: refused, and pruned later.
	old := people.PasskeyCeremony{IDHash: []byte("ceremony-2"), Purpose: "holder-signin", Data: []byte("{}"),
		CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	must(t, e.s.CreatePasskeyCeremony(ctx, old))
	_, err = e.s.TakePasskeyCeremony(ctx, old.IDHash, old.ExpiresAt)
	wantErr(t, err, mandate.ErrConflict)
	n, err := e.s.PrunePasskeyCeremonies(ctx, t0.Add(time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("pruned %d ceremonies, want 2", n)
	}
	_, err = e.s.TakePasskeyCeremony(ctx, old.IDHash, t0)
	wantErr(t, err, mandate.ErrNotFound)
}

func testPasskeyCeremonyRace(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	c := people.PasskeyCeremony{IDHash: []byte("race"), Purpose: "holder-signin", Data: []byte("{}"),
		CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	must(t, e.s.CreatePasskeyCeremony(ctx, c))
	const n = 8
	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := e.s.TakePasskeyCeremony(ctx, c.IDHash, t0)
			results <- err
		})
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, mandate.ErrConflict):
		default:
			t.Errorf("take: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent takes succeeded, want exactly 1", ok)
	}
}

func testPasskeyEnrolment(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	en := people.PasskeyEnrolment{TokenHash: []byte("token"), HolderID: "h1", StructureID: "st1", StartedBy: "s1",
		CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
	must(t, e.s.CreatePasskeyEnrolment(ctx, en))
	got, err := e.s.GetPasskeyEnrolment(ctx, en.TokenHash)
	must(t, err)
	if got.HolderID != "h1" || got.StructureID != "st1" || got.StartedBy != "s1" || got.VerifiedAt != nil ||
		got.UsedAt != nil || got.DeviceHash != nil || !got.ExpiresAt.Equal(en.ExpiresAt) {
		t.Errorf("GetPasskeyEnrolment = %+v", got)
	}
	_, err = e.s.GetPasskeyEnrolment(ctx, []byte("other"))
	wantErr(t, err, mandate.ErrNotFound)

	p := newPasskey("e", "holder:h1", t0)
	// Not verified yet: cannot complete.
	wantErr(t, e.s.CompletePasskeyEnrolment(ctx, en.TokenHash, []byte("device"), t0, p), mandate.ErrConflict)
	must(t, e.s.VerifyPasskeyEnrolment(ctx, en.TokenHash, []byte("device"), t0.Add(time.Minute)))
	got, _ = e.s.GetPasskeyEnrolment(ctx, en.TokenHash)
	if got.VerifiedAt == nil || string(got.DeviceHash) != "device" {
		t.Errorf("after verify: %+v", got)
	}
	// Another device cannot complete it; nothing is stored.
	wantErr(t, e.s.CompletePasskeyEnrolment(ctx, en.TokenHash, []byte("other-device"), t0, p), mandate.ErrConflict)
	if _, err := e.s.GetPasskey(ctx, p.CredentialID); !errors.Is(err, mandate.ErrNotFound) {
		t.Fatalf("passkey stored by a refused completion: %v", err)
	}
	// A taken credential id rolls the link back: it stays usable.
	must(t, e.s.CreatePasskey(ctx, newPasskey("taken", "holder:h2", t0)))
	wantErr(t, e.s.CompletePasskeyEnrolment(ctx, en.TokenHash, []byte("device"), t0, newPasskey("taken", "holder:h1", t0)), mandate.ErrAlreadyExists)
	got, _ = e.s.GetPasskeyEnrolment(ctx, en.TokenHash)
	if got.UsedAt != nil {
		t.Fatal("a failed completion used the link")
	}
	must(t, e.s.CompletePasskeyEnrolment(ctx, en.TokenHash, []byte("device"), t0.Add(2*time.Minute), p))
	if _, err := e.s.GetPasskey(ctx, p.CredentialID); err != nil {
		t.Fatalf("enrolled passkey: %v", err)
	}
	// Single use.
	wantErr(t, e.s.CompletePasskeyEnrolment(ctx, en.TokenHash, []byte("device"), t0, newPasskey("f", "holder:h1", t0)), mandate.ErrConflict)
	wantErr(t, e.s.VerifyPasskeyEnrolment(ctx, en.TokenHash, []byte("device2"), t0), mandate.ErrConflict)

	// Expired links cannot be verified or completed.
	ex := people.PasskeyEnrolment{TokenHash: []byte("expired"), HolderID: "h1", StructureID: "st1", StartedBy: "s1",
		CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	must(t, e.s.CreatePasskeyEnrolment(ctx, ex))
	wantErr(t, e.s.VerifyPasskeyEnrolment(ctx, ex.TokenHash, []byte("device"), t0.Add(time.Minute)), mandate.ErrConflict)
	wantErr(t, e.s.VerifyPasskeyEnrolment(ctx, []byte("unknown"), []byte("device"), t0), mandate.ErrNotFound)
}
