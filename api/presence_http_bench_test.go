package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// The holders' heartbeats as the server receives them (issue 5, "Speed":
// 10,000 concurrent presence leases on 2 cores with CPU to spare): each
// live page POSTs /holder/mandates/{id}/heartbeat every 5 s with its
// session cookie and CSRF token, through the whole echo stack the binary
// serves (request id, metrics, request log, security headers, body limit,
// CSRF), the holder's session lookup, and Service.Heartbeat's UPDATE.
// mandate.BenchmarkHeartbeat measures the service call alone.

const (
	httpLeases  = 10_000
	httpHolders = 100 // each with httpLeases/httpHolders live sessions, one browser session each
	httpCSRF    = "bench-csrf-token"
)

type heartbeatBench struct {
	echo    *echo.Echo
	paths   []string // POST targets, one per lease
	cookies []string // the session cookie of paths[i]'s holder
}

func newHeartbeatBench(b *testing.B, st *store.Store) *heartbeatBench {
	b.Helper()
	ctx := context.Background()
	clock := mandate.SystemClock{}
	now := clock.Now().UTC().Truncate(time.Microsecond)
	quiet := slog.New(slog.DiscardHandler)
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	log := storetest.StartAuditLog(b, st, clock)
	sealer, err := seal.New(randomBytes(b, 32))
	must(err)
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Recorder: log, Logger: quiet})
	must(err)
	rev := &deviceRevoker{}
	svc, err := mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: rev,
		Recorder: audit.MandateRecorder(log.Log), Clock: clock, Log: quiet},
		mandate.ServiceConfig{LeaseLapse: 5 * time.Minute}) // no lease lapses during a run, however slow
	must(err)
	srv, err := authz.New(authz.Config{Issuer: "http://127.0.0.1:1", HMACSecret: randomBytes(b, 32)}, st, keys,
		authz.WithClock(clock), authz.WithRecorder(log), authz.WithLogger(quiet), authz.WithMandates(svc), authz.WithDeviceStore(st))
	must(err)
	rev.srv = srv
	peopleSvc := people.NewService(st, sealer, clock, quiet, people.Config{Recorder: log, Holders: st})
	pages := ui.New(ui.Deps{People: peopleSvc, Logger: quiet})
	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet})
	ui.NewHolderMandatePages(pages, svc, srv, people.NewDirectory(st), mandate.NewHub(), ui.HolderMandateConfig{Clock: clock}).Register(e)

	must(st.CreateStructure(ctx, people.Structure{ID: "tulle", Name: "France Services Tulle", CreatedAt: now}))
	must(st.CreateStaff(ctx, people.Staff{ID: "mediator", Email: "mediator@tulle.example", DisplayName: "Médiatrice",
		Role: people.RoleMediator, StructureID: "tulle", Status: people.StaffActive, CreatedAt: now}))
	cookies := make([]string, httpHolders)
	for h := range httpHolders {
		id := fmt.Sprintf("holder-%03d", h)
		must(st.CreateHolder(ctx, people.Holder{ID: id, Mailbox: id + "@mail.example", DisplayName: "Titulaire " + id,
			Email: id + "@perso.example", Language: "fr", CreatedAt: now}, "tulle"))
		cookies[h], _, err = peopleSvc.StartSession(ctx, people.Principal{Subject: people.HolderSubject(id), Kind: "holder", ID: id})
		must(err)
	}
	hb := &heartbeatBench{echo: e}
	tx, err := st.BeginTX(ctx)
	must(err)
	for i := range httpLeases {
		holder := fmt.Sprintf("holder-%03d", i%httpHolders)
		m := mandate.Mandate{
			ID: fmt.Sprintf("m-%06d", i), Kind: mandate.KindSession, StructureID: "tulle",
			HolderID: holder, Mailbox: holder + "@mail.example", DelegateID: "mediator",
			Scopes: []string{"mail.read"}, Exclusions: []string{mandate.ExcludePersonal},
			Purpose: "Dossier CAF", PurposeCategory: mandate.PurposeSocial, Presence: mandate.PresenceRequired,
			Duration: 4 * time.Hour, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(4 * time.Hour),
			AnswerBy: now.Add(9 * time.Minute), State: mandate.StateActive, GrantID: fmt.Sprintf("grant-%06d", i),
			ConsentVersion: mandate.DefaultConsentVersion, ConsentHash: strings.Repeat("cd", 32),
			LeaseUntil: now.Add(5 * time.Minute), CreatedAt: now.Add(-2 * time.Minute).Add(time.Duration(i) * time.Microsecond),
			DecidedAt: now.Add(-time.Minute), ActivatedAt: now.Add(-time.Minute), Version: 1,
		}
		if err := st.CreateMandate(tx, m); err != nil {
			_ = st.Rollback(tx)
			b.Fatal(err)
		}
		hb.paths = append(hb.paths, "/holder/mandates/"+m.ID+"/heartbeat")
		hb.cookies = append(hb.cookies, cookies[i%httpHolders])
	}
	must(st.Commit(tx))
	return hb
}

// beat sends lease i's heartbeat as presence.js does.
func (hb *heartbeatBench) beat(i int) error {
	req := httptest.NewRequest(http.MethodPost, hb.paths[i], nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", httpCSRF)
	req.AddCookie(&http.Cookie{Name: ui.DefaultCookieName, Value: hb.cookies[i]})
	req.AddCookie(&http.Cookie{Name: "mandated_csrf", Value: httpCSRF})
	rec := httptest.NewRecorder()
	hb.echo.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"lease_until"`) {
		return fmt.Errorf("heartbeat %s: %d %s", hb.paths[i], rec.Code, rec.Body.String())
	}
	return nil
}

// BenchmarkHeartbeatHTTP: 10,000 live leases beaten round robin through
// the holder's heartbeat endpoint, from many goroutines at once.
// heartbeats/s is b.N over the run; cpu-µs/op this process's CPU per
// heartbeat; pg-cpu-µs/op that of the PostgreSQL backends serving this
// process (/proc/<pid>/stat), which share the same two cores.
func BenchmarkHeartbeatHTTP(b *testing.B) {
	for _, s := range []struct {
		name string
		open func(testing.TB) *store.Store
	}{{"postgres", storetest.OpenPostgres}, {"sqlite", storetest.OpenSQLite}} {
		b.Run(s.name, func(b *testing.B) {
			st := s.open(b)
			hb := newHeartbeatBench(b, st)
			b.SetParallelism(8) // 8 × GOMAXPROCS heartbeats in flight
			// Warm up: every lease beats once, 64 at a time, so that the
			// pooled connections are open and, on PostgreSQL, the rows are
			// past their first (never HOT) update, as in a running server.
			if err := storetest.WarmUp(httpLeases, 64, hb.beat); err != nil {
				b.Fatal(err)
			}
			storetest.MeasureParallel(b, st.Dialect() == store.DialectPostgres, "heartbeats/s",
				func(i int) error { return hb.beat(i % httpLeases) })
		})
	}
}
