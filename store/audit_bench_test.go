package store_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// benchEvent is a typical mailbox event: a staff member acting for a
// holder, both people (two commitments and two sealed readable rows).
func benchEvent(i int) audit.Event {
	return audit.Event{
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-" + strconv.Itoa(i%50), Name: "Agent " + strconv.Itoa(i%50)},
		Holder: "holder-" + strconv.Itoa(i%2000), Structure: "mairie-lyon", Action: audit.ActionMailboxRead,
		Target: "message-" + strconv.Itoa(i), MandateID: "mandate-" + strconv.Itoa(i%2000), ClientID: "webmail",
		Outcome: audit.OutcomeSuccess, RequestID: "req-" + strconv.Itoa(i),
	}
}

// recordConcurrently records n events from writers goroutines and returns
// each Record's latency.
func recordConcurrently(tb testing.TB, l *storetest.AuditLog, writers, n int) []time.Duration {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t := time.Now()
				if _, err := l.Record(context.Background(), benchEvent(i)); err != nil {
					tb.Error(err)
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	return lat
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkAuditThroughput records b.N durable events from 64 concurrent
// writers (the load) and reports events/s and the acknowledgement
// latency (p50, p99) of Record.
func BenchmarkAuditThroughput(b *testing.B) {
	for _, d := range dialects {
		for _, writers := range []int{64} {
			b.Run(fmt.Sprintf("%s/writers=%d", d.name, writers), func(b *testing.B) {
				s := d.open(b)
				l := storetest.StartAuditLog(b, s, nil)
				recordConcurrently(b, l, writers, 256) // keys made, caches warm
				b.ResetTimer()
				start := time.Now()
				lat := recordConcurrently(b, l, writers, b.N)
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
				b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// BenchmarkAuditProofs1M builds a log of MANDATED_BENCH_AUDIT_EVENTS events
// (default 1,000,000) through Record (4096 concurrent writers, batches of up
// to 4096), then measures inclusion proofs of random events and consistency
// proofs from random older sizes to the latest checkpoint, as the HTTP
// endpoints make them (checkpoint, leaf and hashes read from the database).
// Generation time is logged (-v).
//
// Generating takes minutes; MANDATED_BENCH_AUDIT_KEEP names a database to
// keep the log in and reuse on the next run instead (SQLite: that name as a
// file in the system's temporary directory; PostgreSQL: a schema of that
// name in MANDATED_TEST_DATABASE_URL, never dropped).
func BenchmarkAuditProofs1M(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("MANDATED_BENCH_AUDIT_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			s := openProofsBenchStore(b, d.name, d.open)
			sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
			if err != nil {
				b.Fatal(err)
			}
			l := storetest.StartAuditLog(b, s, nil)
			have, err := s.AuditTreeSize(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if have < int64(n) {
				start := time.Now()
				recordConcurrently(b, l, 4096, n-int(have))
				gen := time.Since(start)
				b.Logf("%s: generated %d events in %v (%.0f events/s)", d.name, n-int(have), gen.Round(time.Second), float64(n-int(have))/gen.Seconds())
			}
			n := n
			if have > int64(n) {
				n = int(have)
			}
			// Old sizes a consistency proof starts from need checkpoints:
			// the writer signs one every second in production.
			if _, err := l.Checkpoint(context.Background()); err != nil {
				b.Fatal(err)
			}
			// A fresh log (a freshly started replica: no hash cached).
			fresh, err := audit.New(context.Background(), audit.Config{Store: s, Sealer: sealer, Origin: "mandated.test/audit"})
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for _, c := range []struct {
				name string
				op   func() error
			}{
				{"inclusion", func() error {
					bundle, err := fresh.InclusionProof(context.Background(), rng.Int64N(int64(n)))
					if err == nil && len(bundle.Proof) == 0 {
						err = fmt.Errorf("empty proof")
					}
					return err
				}},
				{"consistency", func() error {
					_, err := fresh.ConsistencyProof(context.Background(), 1+rng.Int64N(int64(n-1)), 0)
					return err
				}},
			} {
				b.Run(c.name, func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					for b.Loop() {
						t := time.Now()
						if err := c.op(); err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(t))
					}
					b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}

// openProofsBenchStore opens the store BenchmarkAuditProofs1M measures: a
// fresh one, or the kept one MANDATED_BENCH_AUDIT_KEEP names.
func openProofsBenchStore(b *testing.B, dialect string, fresh func(testing.TB) *store.Store) *store.Store {
	if keep := os.Getenv("MANDATED_BENCH_AUDIT_KEEP"); keep != "" {
		return storetest.OpenKept(b, dialect == "Postgres", keep)
	}
	return fresh(b)
}
