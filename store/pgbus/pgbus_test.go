package pgbus_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/mandated/mandated/store/pgbus"
	"github.com/mandated/mandated/store/storetest"
)

// wait bounds every wait for a message: generous, since a message that
// arrives does so in milliseconds and one that does not fails the test.
const wait = 10 * time.Second

// replica is one bus with a subscriber recording what it hears.
type replica struct {
	bus   *pgbus.Bus
	heard chan string
}

// startReplica starts a bus on dsn, stopped (and checked) when the test ends.
func startReplica(t testing.TB, dsn string, opts pgbus.Options) *replica {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.MinBackoff = 10 * time.Millisecond
	bus, err := pgbus.New(t.Context(), dsn, db, opts)
	if err != nil {
		t.Fatalf("new bus: %v", err)
	}
	r := &replica{bus: bus, heard: make(chan string, 10000)}
	bus.Subscribe(func(id string) { r.heard <- id })
	ran := make(chan error, 1)
	go func() { ran <- bus.Run(context.WithoutCancel(t.Context())) }()
	t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-ran; err != nil {
			t.Errorf("Run returned %v after Close", err)
		}
	})
	r.expect(t, pgbus.FlushAll) // the bus listens
	return r
}

// expect waits for the next messages the replica hears and checks them.
func (r *replica) expect(t testing.TB, want ...string) {
	t.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for i, w := range want {
		select {
		case got := <-r.heard:
			if got != w {
				t.Fatalf("message %d: heard %.40q, want %.40q", i, got, w)
			}
		case <-timeout.C:
			t.Fatalf("message %d: nothing heard after %v, want %.40q", i, wait, w)
		}
	}
}

// expectNothingBefore checks that marker is the next thing the replica hears.
func (r *replica) expectNothingBefore(t testing.TB, marker string) {
	t.Helper()
	r.expect(t, marker)
}

func publish(t testing.TB, r *replica, ids ...string) {
	t.Helper()
	if err := r.bus.Publish(t.Context(), ids...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestRevocationReachesEveryReplicaOfTheSchemaOnce(t *testing.T) {
	dsn, otherDSN := storetest.PostgresSchema(t), storetest.PostgresSchema(t)
	a := startReplica(t, dsn, pgbus.Options{})
	b := startReplica(t, dsn, pgbus.Options{})
	other := startReplica(t, otherDSN, pgbus.Options{})
	otherPeer := startReplica(t, otherDSN, pgbus.Options{})

	publish(t, a, "req-1", "client:app")
	a.expect(t, "req-1", "client:app") // delivered locally, before Publish returns
	b.expect(t, "req-1", "client:app")

	// PostgreSQL delivers notifications in commit order: had a heard its
	// own notification too, it would hear it before b's.
	publish(t, b, "req-2")
	a.expectNothingBefore(t, "req-2")
	b.expect(t, "req-2")

	// Likewise a replica in another schema hears its own schema's marker
	// first, since the marker was committed after a's and b's messages.
	publish(t, otherPeer, "marker")
	other.expectNothingBefore(t, "marker")
	otherPeer.expect(t, "marker")
}

func TestManyRevocationsSplitOverNotificationsAllArrive(t *testing.T) {
	dsn := storetest.PostgresSchema(t)
	a := startReplica(t, dsn, pgbus.Options{})
	b := startReplica(t, dsn, pgbus.Options{})

	var ids []string
	for i := range 3000 {
		ids = append(ids, fmt.Sprintf("%08d-%s", i, rand.Text())) // 35 bytes, ~300 KB in all
	}
	// An ID so long that its payload is exactly the limit.
	ids = append(ids, strings.Repeat("L", pgbus.MaxPayload-len(`{"from":"0123456789abcdef","ids":[""]}`)))
	publish(t, a, ids...)
	a.expect(t, ids...)
	b.expect(t, ids...)

	// An ID too long for any notification is reported; the others still go.
	err := a.bus.Publish(t.Context(), "before", strings.Repeat("X", pgbus.MaxPayload), "after")
	if err == nil {
		t.Error("publishing an oversized ID reported no error")
	}
	b.expect(t, "before", "after")
}

func TestListenerReconnectsAndFlushesAfterItsConnectionIsKilled(t *testing.T) {
	dsn := storetest.PostgresSchema(t)
	name := "mandated-test-" + rand.Text()[:12]
	a := startReplica(t, dsn, pgbus.Options{})
	b := startReplica(t, dsn, pgbus.Options{ApplicationName: name})

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := range 2 {
		killListener(t, db, name)
		// b missed whatever was published while it was down: it must flush.
		b.expect(t, pgbus.FlushAll)
		id := fmt.Sprintf("after-reconnect-%d", round)
		publish(t, a, id)
		a.expect(t, id)
		b.expect(t, id)
	}
}

// killListener terminates the one backend named name, as a failover or an
// administrator would.
func killListener(t *testing.T, db *sql.DB, name string) {
	t.Helper()
	// Look the backend up first: in one WHERE clause the planner may call
	// pg_terminate_backend before filtering on the name.
	var pids []int
	rows, err := db.QueryContext(t.Context(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, name)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid int
		must(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	must(t, rows.Err())
	if len(pids) != 1 {
		t.Fatalf("listener backends named %s: %v, want one", name, pids)
	}
	// With a timeout (PostgreSQL 14+), wait until the backend has exited, so
	// the next lookup cannot find it still there.
	var ok bool
	must(t, db.QueryRowContext(t.Context(), `SELECT pg_terminate_backend($1, $2)`, pids[0], wait.Milliseconds()).Scan(&ok))
	if !ok {
		t.Fatalf("backend %d not terminated within %v", pids[0], wait)
	}
}

func TestRunStopsOnCloseOrContext(t *testing.T) {
	dsn := storetest.PostgresSchema(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	closed, err := pgbus.New(t.Context(), dsn, db, pgbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, closed.Close()) // before Run: Run then returns at once
	must(t, closed.Run(t.Context()))
	if closed.Run(t.Context()) == nil {
		t.Error("second Run returned nil")
	}

	bus, err := pgbus.New(t.Context(), dsn, db, pgbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- bus.Run(ctx) }()
	select {
	case <-bus.Ready():
	case <-time.After(wait):
		t.Fatal("bus not listening")
	}
	cancel()
	select {
	case err := <-ran:
		must(t, err)
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended")
	}
	must(t, bus.Close())
	// Publishing needs only the pool.
	must(t, bus.Publish(t.Context(), "after-close"))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// BenchmarkPublishToOtherReplica measures publish→receive latency between
// two buses on one schema: each iteration publishes one ID and waits for
// the other bus to hear it.
func BenchmarkPublishToOtherReplica(b *testing.B) {
	dsn := storetest.PostgresSchema(b)
	a := startReplica(b, dsn, pgbus.Options{})
	r := startReplica(b, dsn, pgbus.Options{})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("req-%d", i)
		start := time.Now()
		if err := a.bus.Publish(b.Context(), id); err != nil {
			b.Fatal(err)
		}
		<-a.heard
		r.expect(b, id)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
