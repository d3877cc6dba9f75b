package storetest

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
)

func testDeviceAuthorizations(t *testing.T, open Opener) {
	t.Run("CreateFind", func(t *testing.T) { testDeviceCreateFind(t, open) })
	t.Run("PollSlowDown", func(t *testing.T) { testDevicePoll(t, open) })
	t.Run("ConcurrentPolls", func(t *testing.T) { testDeviceConcurrentPolls(t, open) })
	t.Run("DeletePrune", func(t *testing.T) { testDeviceDeletePrune(t, open) })
	t.Run("ClientDeletionCascades", func(t *testing.T) { testDeviceClientCascade(t, open) })
}

// deviceEnv is a mandateEnv with the requested mandate "m1".
func deviceEnv(t *testing.T, open Opener) env {
	t.Helper()
	e := mandateEnv(t, open)
	must(t, e.s.CreateMandate(t.Context(), requested("m1")))
	return e
}

// newDeviceAuthorization is a pending authorization of m1 for the console,
// requested at t0, valid 10 minutes, polled every 5 s.
func newDeviceAuthorization(id string) authz.DeviceAuthorization {
	return authz.DeviceAuthorization{
		DeviceCodeSignature: "dc-" + id, UserCodeSignature: "uc-" + id, MandateID: "m1", ClientID: "console",
		Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend}, RequestedAt: t0, ExpiresAt: t0.Add(10 * time.Minute),
		Interval: 5 * time.Second,
	}
}

func testDeviceCreateFind(t *testing.T, open Opener) {
	e := deviceEnv(t, open)
	ctx := t.Context()
	d := newDeviceAuthorization("a")
	must(t, e.s.CreateDeviceAuthorization(ctx, d))
	got, err := e.s.DeviceAuthorizationByUserCode(ctx, "uc-a")
	must(t, err)
	if !reflect.DeepEqual(got, d) {
		t.Errorf("device authorization = %+v\nwant                   %+v", got, d)
	}
	_, err = e.s.DeviceAuthorizationByUserCode(ctx, "dc-a") // a device code is not a user code
	wantErr(t, err, mandate.ErrNotFound)

	// RequestedAt defaults to now; no scopes round-trip as nil.
	bare := newDeviceAuthorization("bare")
	bare.RequestedAt, bare.Scopes = time.Time{}, nil
	must(t, e.s.CreateDeviceAuthorization(ctx, bare))
	got, err = e.s.DeviceAuthorizationByUserCode(ctx, "uc-bare")
	must(t, err)
	bare.RequestedAt = e.clock.Now()
	if !reflect.DeepEqual(got, bare) {
		t.Errorf("device authorization = %+v\nwant                   %+v", got, bare)
	}

	for _, tt := range []struct {
		name string
		edit func(*authz.DeviceAuthorization)
		want error
	}{
		{"device code taken", func(d *authz.DeviceAuthorization) { d.UserCodeSignature = "uc-other" }, mandate.ErrAlreadyExists},
		{"user code taken", func(d *authz.DeviceAuthorization) { d.DeviceCodeSignature = "dc-other" }, mandate.ErrAlreadyExists},
		{"unknown mandate", func(d *authz.DeviceAuthorization) {
			d.DeviceCodeSignature, d.UserCodeSignature, d.MandateID = "dc-m", "uc-m", "nope"
		}, mandate.ErrNotFound},
		{"unknown client", func(d *authz.DeviceAuthorization) {
			d.DeviceCodeSignature, d.UserCodeSignature, d.ClientID = "dc-c", "uc-c", "nope"
		}, mandate.ErrNotFound},
	} {
		d := newDeviceAuthorization("a")
		tt.edit(&d)
		if err := e.s.CreateDeviceAuthorization(ctx, d); !errors.Is(err, tt.want) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.want)
		}
	}
	for _, uc := range []string{"uc-other", "uc-m", "uc-c", "nope"} {
		_, err := e.s.DeviceAuthorizationByUserCode(ctx, uc)
		wantErr(t, err, mandate.ErrNotFound)
	}
	if err := e.s.CreateDeviceAuthorization(ctx, authz.DeviceAuthorization{MandateID: "m1", ClientID: "console"}); err == nil {
		t.Error("an authorization without code signatures was stored")
	}
}

func testDevicePoll(t *testing.T, open Opener) {
	e := deviceEnv(t, open)
	ctx := t.Context()
	d := newDeviceAuthorization("a")
	must(t, e.s.CreateDeviceAuthorization(ctx, d))

	at := t0
	for i, step := range []struct {
		after        time.Duration // since the previous poll
		tooFast      bool
		intervalSeen time.Duration // Interval returned (before this poll)
	}{
		{0, false, 5 * time.Second},                 // first poll: never too fast
		{5 * time.Second, false, 5 * time.Second},   // exactly the interval
		{6 * time.Second, false, 5 * time.Second},   // slower
		{4 * time.Second, false, 5 * time.Second},   // one second early: forgiven (authz.PollLeeway)
		{3 * time.Second, true, 5 * time.Second},    // too fast: 5 s → 10 s
		{8 * time.Second, true, 10 * time.Second},   // still too fast for 10 s: → 15 s
		{15 * time.Second, false, 15 * time.Second}, // patient again: stays 15 s
		{15 * time.Second, false, 15 * time.Second},
	} {
		prev := at
		at = at.Add(step.after)
		got, tooFast, err := e.s.PollDeviceAuthorization(ctx, "dc-a", at)
		must(t, err)
		if tooFast != step.tooFast || got.Interval != step.intervalSeen {
			t.Errorf("poll %d: tooFast %v, interval %s; want %v, %s", i, tooFast, got.Interval, step.tooFast, step.intervalSeen)
		}
		wantLast := prev
		if i == 0 {
			wantLast = time.Time{}
		}
		if !got.LastPolledAt.Equal(wantLast) {
			t.Errorf("poll %d: returned LastPolledAt %v, want the previous poll's %v", i, got.LastPolledAt, wantLast)
		}
		if got.MandateID != "m1" || got.ClientID != "console" || !got.ExpiresAt.Equal(d.ExpiresAt) {
			t.Errorf("poll %d: returned %+v", i, got)
		}
	}
	stored, err := e.s.DeviceAuthorizationByUserCode(ctx, "uc-a")
	must(t, err)
	if !stored.LastPolledAt.Equal(at) || stored.Interval != 15*time.Second {
		t.Errorf("stored after polls: last polled %v, interval %s; want %v, 15s", stored.LastPolledAt, stored.Interval, at)
	}
	_, _, err = e.s.PollDeviceAuthorization(ctx, "nope", at)
	wantErr(t, err, mandate.ErrNotFound)
	_, _, err = e.s.PollDeviceAuthorization(ctx, "uc-a", at) // a user code is not a device code
	wantErr(t, err, mandate.ErrNotFound)
}

func testDeviceConcurrentPolls(t *testing.T, open Opener) {
	e := deviceEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateDeviceAuthorization(ctx, newDeviceAuthorization("a")))
	const pollers = 20
	type result struct {
		d       authz.DeviceAuthorization
		tooFast bool
		err     error
	}
	results := make([]result, pollers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range pollers {
		wg.Go(func() {
			<-start
			d, tooFast, err := e.s.PollDeviceAuthorization(ctx, "dc-a", t0)
			results[i] = result{d, tooFast, err}
		})
	}
	close(start)
	wg.Wait()
	first := 0
	// Each poll saw a different row: the first none before it, each other
	// the interval its predecessor left (5 s after the first, then +5 s).
	type view struct {
		interval time.Duration
		first    bool
	}
	seen := map[view]bool{}
	for i, r := range results {
		must(t, r.err)
		if !r.tooFast {
			first++
			if !r.d.LastPolledAt.IsZero() {
				t.Errorf("poller %d: not too fast, yet a poll came before", i)
			}
		}
		v := view{r.d.Interval, r.d.LastPolledAt.IsZero()}
		if seen[v] {
			t.Errorf("two polls saw %+v: one read a stale row", v)
		}
		seen[v] = true
	}
	if first != 1 {
		t.Errorf("%d polls were not too fast, want exactly 1 (the first)", first)
	}
	got, err := e.s.DeviceAuthorizationByUserCode(ctx, "uc-a")
	must(t, err)
	if want := 5*time.Second + (pollers-1)*5*time.Second; got.Interval != want {
		t.Errorf("interval after %d simultaneous polls = %s, want %s (no slow_down lost)", pollers, got.Interval, want)
	}
}

func testDeviceDeletePrune(t *testing.T, open Opener) {
	e := deviceEnv(t, open)
	ctx := t.Context()
	for i, exp := range []time.Duration{-time.Second, 0, time.Second} {
		d := newDeviceAuthorization(string(rune('a' + i)))
		d.ExpiresAt = t0.Add(exp)
		must(t, e.s.CreateDeviceAuthorization(ctx, d))
	}
	must(t, e.s.CreateDeviceAuthorization(ctx, newDeviceAuthorization("d")))

	must(t, e.s.DeleteDeviceAuthorization(ctx, "dc-d"))
	_, err := e.s.DeviceAuthorizationByUserCode(ctx, "uc-d")
	wantErr(t, err, mandate.ErrNotFound)
	must(t, e.s.DeleteDeviceAuthorization(ctx, "dc-d")) // already gone: no error
	must(t, e.s.DeleteDeviceAuthorization(ctx, "nope"))

	n, err := e.s.PruneDeviceAuthorizations(ctx, t0)
	must(t, err)
	if n != 1 {
		t.Errorf("pruned %d, want 1 (only the one expired before t0)", n)
	}
	for uc, want := range map[string]error{"uc-a": mandate.ErrNotFound, "uc-b": nil, "uc-c": nil} {
		if _, err := e.s.DeviceAuthorizationByUserCode(ctx, uc); !errors.Is(err, want) {
			t.Errorf("%s after prune: error = %v, want %v", uc, err, want)
		}
	}
	n, err = e.s.PruneDeviceAuthorizations(ctx, t0.Add(time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("pruned %d, want 2", n)
	}
}

func testDeviceClientCascade(t *testing.T, open Opener) {
	e := deviceEnv(t, open)
	ctx := t.Context()
	e.createClient(t, "tv")
	d := newDeviceAuthorization("tv")
	d.ClientID = "tv"
	must(t, e.s.CreateDeviceAuthorization(ctx, d))
	must(t, e.s.CreateDeviceAuthorization(ctx, newDeviceAuthorization("console")))
	must(t, e.s.DeleteClient(ctx, "tv"))
	_, err := e.s.DeviceAuthorizationByUserCode(ctx, "uc-tv")
	wantErr(t, err, mandate.ErrNotFound)
	_, err = e.s.DeviceAuthorizationByUserCode(ctx, "uc-console")
	must(t, err)
	if _, err := e.s.GetMandate(ctx, "m1"); err != nil {
		t.Errorf("the mandate went with another client's authorization: %v", err)
	}
}
