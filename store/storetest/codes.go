package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
)

func testOneTimeCodes(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One", CreatedAt: t0}))
	must(t, e.s.CreateHolder(ctx, e.newHolder("h1", "h1@example.org", "One"), "s1"))
	must(t, e.s.CreateHolder(ctx, e.newHolder("h2", "h2@example.org", "Two"), "s1"))

	code := func(id, holder string, purpose people.CodePurpose, hash string) people.OneTimeCode {
		now := e.clock.Now()
		return people.OneTimeCode{ID: id, HolderID: holder, Purpose: purpose, Hash: []byte(hash),
			Channel: notify.SMS, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	}
	// live returns the live code's id, or "" when there is none.
	live := func(t *testing.T, holder string, purpose people.CodePurpose) string {
		t.Helper()
		var id string
		err := e.s.UpdateLiveCode(ctx, holder, purpose, e.clock.Now(), func(c *people.OneTimeCode) error {
			id = c.ID
			return nil
		})
		if errors.Is(err, mandate.ErrNotFound) {
			return ""
		}
		must(t, err)
		return id
	}

	t.Run("a new code supersedes the older ones of its purpose only", func(t *testing.T) {
		must(t, e.s.CreateCode(ctx, code("c1", "h1", people.CodeSignIn, "one")))
		must(t, e.s.CreateCode(ctx, code("e1", "h1", people.CodeEnrol, "enrol")))
		must(t, e.s.CreateCode(ctx, code("x1", "h2", people.CodeSignIn, "other holder")))
		e.clock.Advance(time.Second)
		must(t, e.s.CreateCode(ctx, code("c2", "h1", people.CodeSignIn, "two")))
		if id := live(t, "h1", people.CodeSignIn); id != "c2" {
			t.Errorf("live sign-in code = %q, want c2", id)
		}
		if id := live(t, "h1", people.CodeEnrol); id != "e1" {
			t.Errorf("live enrol code = %q, want e1", id)
		}
		if id := live(t, "h2", people.CodeSignIn); id != "x1" {
			t.Errorf("other holder's live code = %q, want x1", id)
		}
	})
	t.Run("update writes attempts and use; the code is read back as stored", func(t *testing.T) {
		must(t, e.s.UpdateLiveCode(ctx, "h1", people.CodeSignIn, e.clock.Now(), func(c *people.OneTimeCode) error {
			if !bytes.Equal(c.Hash, []byte("two")) || c.Channel != notify.SMS || c.Attempts != 0 || !c.ExpiresAt.Equal(c.CreatedAt.Add(10*time.Minute)) {
				t.Errorf("code read back as %+v", c)
			}
			c.Attempts = 2
			c.Hash = []byte("changed") // ignored
			return nil
		}))
		must(t, e.s.UpdateLiveCode(ctx, "h1", people.CodeSignIn, e.clock.Now(), func(c *people.OneTimeCode) error {
			if c.Attempts != 2 || !bytes.Equal(c.Hash, []byte("two")) {
				t.Errorf("after update: %+v", c)
			}
			now := e.clock.Now()
			c.UsedAt = &now
			return nil
		}))
		if id := live(t, "h1", people.CodeSignIn); id != "" {
			t.Errorf("a used code is still live: %s", id)
		}
		boom := errors.New("boom")
		wantErr(t, e.s.UpdateLiveCode(ctx, "h1", people.CodeEnrol, e.clock.Now(), func(c *people.OneTimeCode) error {
			c.Attempts = 99
			return boom
		}), boom)
		must(t, e.s.UpdateLiveCode(ctx, "h1", people.CodeEnrol, e.clock.Now(), func(c *people.OneTimeCode) error {
			if c.Attempts != 0 {
				t.Errorf("an aborted update wrote attempts %d", c.Attempts)
			}
			now := e.clock.Now()
			c.VoidedAt = &now
			return nil
		}))
		if id := live(t, "h1", people.CodeEnrol); id != "" {
			t.Errorf("a voided code is still live: %s", id)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		must(t, e.s.CreateCode(ctx, code("c3", "h1", people.CodeSignIn, "three")))
		e.clock.Advance(10*time.Minute - time.Microsecond)
		if id := live(t, "h1", people.CodeSignIn); id != "c3" {
			t.Errorf("live just before expiry = %q", id)
		}
		e.clock.Advance(time.Microsecond)
		if id := live(t, "h1", people.CodeSignIn); id != "" {
			t.Errorf("live at expiry = %q", id)
		}
	})
	t.Run("count since, and codes older than a day go", func(t *testing.T) {
		n, err := e.s.CountCodesSince(ctx, "h1", t0)
		must(t, err)
		if n != 4 {
			t.Errorf("CountCodesSince = %d, want 4", n)
		}
		n, err = e.s.CountCodesSince(ctx, "h1", e.clock.Now())
		must(t, err)
		if n != 0 {
			t.Errorf("CountCodesSince(now) = %d, want 0", n)
		}
		e.clock.Advance(25 * time.Hour)
		must(t, e.s.CreateCode(ctx, code("c4", "h1", people.CodeSignIn, "four")))
		n, err = e.s.CountCodesSince(ctx, "h1", t0)
		must(t, err)
		if n != 1 {
			t.Errorf("after a day, CountCodesSince = %d, want 1 (older codes deleted)", n)
		}
		n, err = e.s.PruneCodes(ctx, e.clock.Now())
		must(t, err)
		if n != 1 { // h2's x1; h1's c4 was created at now
			t.Errorf("PruneCodes = %d, want 1", n)
		}
		wantErr(t, e.s.CreateCode(ctx, code("c5", "nope", people.CodeSignIn, "x")), mandate.ErrNotFound)
	})
	t.Run("concurrent updates of one code see each other", func(t *testing.T) {
		e.clock.Advance(time.Second)
		must(t, e.s.CreateCode(ctx, code("c6", "h2", people.CodeSignIn, "six")))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				err := e.s.UpdateLiveCode(ctx, "h2", people.CodeSignIn, e.clock.Now(), func(c *people.OneTimeCode) error {
					c.Attempts++
					return nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
				}
			})
		}
		wg.Wait()
		must(t, e.s.UpdateLiveCode(ctx, "h2", people.CodeSignIn, e.clock.Now(), func(c *people.OneTimeCode) error {
			if c.Attempts != 8 {
				t.Errorf("attempts = %d after 8 concurrent updates", c.Attempts)
			}
			return nil
		}))
	})
}
