package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
)

const racers = 8

// race runs fn(i) for i in [0, racers) at once and returns the errors.
func race(fn func(i int) error) []error {
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func winners(t *testing.T, errs []error, allowed ...error) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || errors.Is(err, a)
		}
		if !ok {
			t.Errorf("unexpected error: %v", err)
		}
	}
	return n
}

func testConcurrency(t *testing.T, open Opener) {
	t.Run("one refresh token, many refreshes: one wins", func(t *testing.T) {
		e := newEnv(t, open)
		c := e.createClient(t, "app")
		req := newRequest("req-1", c, "staff:1", t0.Add(time.Hour))
		must(t, e.s.CreateAccessTokenSession(t.Context(), "at-0", req))
		must(t, e.s.CreateRefreshTokenSession(t.Context(), "rt-0", "at-0", req))

		// What fosite's refresh handler does, in a transaction per request.
		errs := race(func(i int) error {
			ctx, err := e.s.BeginTX(t.Context())
			if err != nil {
				return err
			}
			at, rt := fmt.Sprintf("at-%d", i+1), fmt.Sprintf("rt-%d", i+1)
			err = e.s.RotateRefreshToken(ctx, "req-1", "rt-0")
			if err == nil {
				err = e.s.CreateAccessTokenSession(ctx, at, req)
			}
			if err == nil {
				err = e.s.CreateRefreshTokenSession(ctx, rt, at, req)
			}
			if err != nil {
				e.s.Rollback(ctx)
				return err
			}
			return e.s.Commit(ctx)
		})
		if n := winners(t, errs, fosite.ErrInactiveToken, fosite.ErrSerializationFailure, fosite.ErrNotFound); n != 1 {
			t.Fatalf("%d refreshes succeeded, want 1 (errors %v)", n, errs)
		}
		active := 0
		for i := range racers {
			if _, err := e.s.GetRefreshTokenSession(t.Context(), fmt.Sprintf("rt-%d", i+1), nil); err == nil {
				active++
			}
		}
		if active != 1 {
			t.Errorf("%d active refresh tokens after the race, want 1", active)
		}
	})
	t.Run("one code, many redemptions: one wins", func(t *testing.T) {
		e := newEnv(t, open)
		c := e.createClient(t, "app")
		must(t, e.s.CreateAuthorizeCodeSession(t.Context(), "code", newRequest("req-1", c, "staff:1", t0.Add(time.Hour))))
		errs := race(func(int) error { return e.s.InvalidateAuthorizeCodeSession(t.Context(), "code") })
		if n := winners(t, errs, fosite.ErrInvalidatedAuthorizeCode, fosite.ErrSerializationFailure); n != 1 {
			t.Fatalf("%d redemptions succeeded, want 1", n)
		}
	})
}
