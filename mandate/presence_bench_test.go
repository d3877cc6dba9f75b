package mandate_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// Presence at scale (issue 5, "Speed"): 10,000 concurrent presence leases
// whose holders' pages beat every 5 s (2,000 heartbeats/s), and the sweep
// every replica runs each second over them. docs/benchmarks.md records the
// figures. Besides ns/op, each benchmark reports the CPU it cost per
// operation: this process's (getrusage), and on PostgreSQL that of the
// database backends serving this process's connections (/proc/<pid>/stat),
// since the database runs on the same two cores.

const (
	benchLeases      = 10_000
	benchHolders     = 100 // each with benchLeases/benchHolders live sessions
	benchStructure   = "bench-structure"
	benchDelegate    = "bench-mediator"
	benchLeaseLapse  = 5 * time.Minute // no lease lapses during a run, however slow
	benchEndedPerRow = 10              // ended mandates per live one, in the history variant
)

// presenceFixture is a mandate service over a store holding benchLeases
// live sessions with a presence lease, none due for the sweep.
type presenceFixture struct {
	svc     *mandate.Service
	holders []string // holders[i] holds ids[i]
	ids     []string
}

func newPresenceFixture(b *testing.B, st *store.Store, analyse func(), ended int) *presenceFixture {
	b.Helper()
	ctx := context.Background()
	clock := mandate.SystemClock{}
	now := clock.Now().UTC().Truncate(time.Microsecond)
	log := storetest.StartAuditLog(b, st, clock)
	benchMust(b, st.CreateStructure(ctx, people.Structure{ID: benchStructure, Name: "France Services Bench", CreatedAt: now}))
	benchMust(b, st.CreateStaff(ctx, people.Staff{ID: benchDelegate, Email: "mediator@bench.example", DisplayName: "Médiatrice",
		Role: people.RoleMediator, StructureID: benchStructure, Status: people.StaffActive, CreatedAt: now}))
	for h := range benchHolders {
		benchMust(b, st.CreateHolder(ctx, people.Holder{ID: fmt.Sprintf("holder-%03d", h), Mailbox: fmt.Sprintf("holder-%03d@mail.example", h),
			DisplayName: fmt.Sprintf("Titulaire %d", h), Email: fmt.Sprintf("holder-%03d@perso.example", h), Language: "fr", CreatedAt: now}, benchStructure))
	}
	f := &presenceFixture{}
	// One transaction: 10,000 (or 110,000) rows go in within seconds on
	// either dialect.
	tx, err := st.BeginTX(ctx)
	benchMust(b, err)
	for i := range benchLeases * (1 + ended) {
		holder := fmt.Sprintf("holder-%03d", i%benchHolders)
		m := mandate.Mandate{
			ID: fmt.Sprintf("m-%06d", i), Kind: mandate.KindSession, StructureID: benchStructure,
			HolderID: holder, Mailbox: holder + "@mail.example", DelegateID: benchDelegate,
			Scopes: []string{"mail.read", "mail.send"}, Exclusions: []string{mandate.ExcludePersonal},
			Purpose: "Dossier CAF", PurposeCategory: mandate.PurposeSocial, Presence: mandate.PresenceRequired,
			Duration: 4 * time.Hour, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(4 * time.Hour),
			AnswerBy: now.Add(9 * time.Minute), State: mandate.StateActive, GrantID: fmt.Sprintf("grant-%06d", i),
			ConsentVersion: mandate.DefaultConsentVersion, ConsentHash: strings.Repeat("ab", 32),
			LeaseUntil: now.Add(benchLeaseLapse), CreatedAt: now.Add(-2 * time.Minute).Add(time.Duration(i) * time.Microsecond),
			DecidedAt: now.Add(-time.Minute), ActivatedAt: now.Add(-time.Minute), Version: 1,
		}
		if i >= benchLeases { // history: ended sessions
			m.NotBefore, m.NotAfter = now.Add(-48*time.Hour), now.Add(-44*time.Hour)
			m.State, m.EndReason, m.EndedBy, m.EndedAt = mandate.StateEnded, mandate.EndedByHolder, holder, now.Add(-45*time.Hour)
			m.LeaseUntil = time.Time{}
		} else {
			f.holders, f.ids = append(f.holders, holder), append(f.ids, m.ID)
		}
		if err := st.CreateMandate(tx, m); err != nil {
			_ = st.Rollback(tx)
			b.Fatal(err)
		}
	}
	benchMust(b, st.Commit(tx))
	analyse()
	due, err := st.DueMandates(ctx, now, 10)
	benchMust(b, err)
	if len(due) != 0 {
		b.Fatalf("%d mandates due right after the fixture", len(due))
	}
	f.svc, err = mandate.NewService(mandate.Deps{
		Store: st, Dir: people.NewDirectory(st), Revoker: failingRevoker{b}, Recorder: audit.MandateRecorder(log.Log), Clock: clock,
	}, mandate.ServiceConfig{LeaseLapse: benchLeaseLapse})
	benchMust(b, err)
	return f
}

// beat is lease i's heartbeat.
func (f *presenceFixture) beat(i int) error {
	_, err := f.svc.Heartbeat(context.Background(), f.holders[i], f.ids[i])
	return err
}

// failingRevoker fails the benchmark: nothing here ends a mandate.
type failingRevoker struct{ b *testing.B }

func (r failingRevoker) RevokeGrant(_ context.Context, grantID string) error {
	r.b.Errorf("grant %s revoked: no mandate should end in a presence benchmark", grantID)
	return nil
}

func benchMust(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// benchStores are the dialects the presence benchmarks run on; open
// returns the store and what analyses its mandates table once the fixture
// loaded it. On PostgreSQL that is ANALYZE, as autovacuum runs within a
// minute of such a load in production (the sweep's plan depends on it);
// the application never analyses SQLite.
var benchStores = []struct {
	name string
	open func(*testing.B) (*store.Store, func())
}{
	{"postgres", openAnalysedPostgres},
	{"sqlite", func(b *testing.B) (*store.Store, func()) { return storetest.OpenSQLite(b), func() {} }},
}

// openAnalysedPostgres is storetest.OpenPostgres, with ANALYZE of the
// mandates table.
func openAnalysedPostgres(b *testing.B) (*store.Store, func()) {
	b.Helper()
	dsn := storetest.PostgresSchema(b)
	st, err := store.Open(b.Context(), dsn, store.Options{})
	benchMust(b, err)
	b.Cleanup(func() { st.Close() })
	benchMust(b, st.Migrate(b.Context()))
	return st, func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		benchMust(b, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "ANALYZE mandates")
		benchMust(b, err)
	}
}

// BenchmarkHeartbeat: Service.Heartbeat over 10,000 live leases, round
// robin, from many goroutines at once (as many phones beat at once). Each
// heartbeat is one UPDATE of lease_until (mostly HOT on PostgreSQL: no
// index covers it), committed durably. heartbeats/s is b.N over the run;
// cpu-µs/op is this process's CPU per heartbeat, pg-cpu-µs/op the
// database backends'.
func BenchmarkHeartbeat(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			st, analyse := s.open(b)
			f := newPresenceFixture(b, st, analyse, 0)
			b.SetParallelism(8) // 8 × GOMAXPROCS heartbeats in flight
			benchMust(b, storetest.WarmUp(benchLeases, 64, f.beat))
			storetest.MeasureParallel(b, st.Dialect() == store.DialectPostgres, "heartbeats/s",
				func(i int) error { return f.beat(i % benchLeases) })
		})
	}
}

// BenchmarkSweep: one sweep (Service.Sweep, as every replica runs each
// second) over 10,000 live leases, none due: the per-second cost of
// watching for lapsed leases. The "history" variant adds ten ended
// mandates per live one (100,000): whether the sweep's cost grows with
// the mandates that are over.
func BenchmarkSweep(b *testing.B) {
	for _, s := range benchStores {
		for _, v := range []struct {
			name  string
			ended int
		}{{"live-10000", 0}, {"live-10000+ended-100000", benchEndedPerRow}} {
			b.Run(s.name+"/"+v.name, func(b *testing.B) {
				st, analyse := s.open(b)
				f := newPresenceFixture(b, st, analyse, v.ended)
				ctx := context.Background()
				if _, err := f.svc.Sweep(ctx); err != nil { // warm: plans, pooled connection
					b.Fatal(err)
				}
				cpu := storetest.StartCPU(b, st.Dialect() == store.DialectPostgres)
				b.ResetTimer()
				for b.Loop() {
					n, err := f.svc.Sweep(ctx)
					if err != nil || n != 0 {
						b.Fatalf("sweep moved %d: %v", n, err)
					}
				}
				b.StopTimer()
				cpu.Report(b)
			})
		}
	}
}

// BenchmarkPresenceLoad: the load itself, paced instead of flat
// out: 10,000 leases beating every 5 s (2,000 heartbeats/s, sent 10 every
// 5 ms on a fixed schedule, each in its own goroutine) and one sweep per
// second, as one replica would serve them all. One op is one second of that
// load (run it with -benchtime 30x). cores is this process's CPU per second
// of wall time, pg-cores that of its PostgreSQL backends, out of the
// machine's 2; hb-p50-ms and hb-p99-ms are the heartbeats' latency from the
// time each was due, so a backlog shows there.
func BenchmarkPresenceLoad(b *testing.B) {
	const (
		perSecond = benchLeases / 5 // a heartbeat every 5 s
		tick      = 5 * time.Millisecond
		perTick   = perSecond / int(time.Second/tick)
	)
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			st, analyse := s.open(b)
			f := newPresenceFixture(b, st, analyse, 0)
			ctx := context.Background()
			var (
				mu   sync.Mutex
				lat  []time.Duration
				next int
			)
			beat := func(i int, due time.Time) {
				if _, err := f.svc.Heartbeat(ctx, f.holders[i], f.ids[i]); err != nil {
					b.Error(err)
				}
				d := time.Since(due)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
			benchMust(b, storetest.WarmUp(benchLeases, 64, f.beat))
			cpu := storetest.StartCPU(b, st.Dialect() == store.DialectPostgres)
			start := time.Now()
			var wg sync.WaitGroup
			ticks := 0 // since start: a slow second does not delay the next
			for b.Loop() {
				wg.Go(func() {
					if n, err := f.svc.Sweep(ctx); err != nil || n != 0 {
						b.Errorf("sweep moved %d: %v", n, err)
					}
				})
				for range perSecond / perTick {
					due := start.Add(time.Duration(ticks) * tick)
					ticks++
					time.Sleep(time.Until(due))
					for range perTick {
						i := next % benchLeases
						next++
						wg.Go(func() { beat(i, due) })
					}
				}
			}
			wg.Wait()
			elapsed := time.Since(start)
			self, pg, ok := cpu.Used(b)
			b.ReportMetric(self.Seconds()/elapsed.Seconds(), "cores")
			if ok {
				b.ReportMetric(pg.Seconds()/elapsed.Seconds(), "pg-cores")
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "hb-p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "hb-p99-ms")
		})
	}
}
