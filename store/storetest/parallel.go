package storetest

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// WarmUp calls op(i) once for every i in [0, n), from workers goroutines,
// and returns every error they met (a benchmark's warm-up: connections
// open, caches filled, rows past their first update).
func WarmUp(n, workers int, op func(i int) error) error {
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					errs <- nil
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
	for range workers {
		err = errors.Join(err, <-errs)
	}
	return err
}

// MeasureParallel times b.N calls of op(i) (i counting up from 0) in
// parallel (b.RunParallel), then reports the CPU per call (CPUMeter; pg:
// the PostgreSQL backends' too), the allocations, and the rate of calls
// per second as the metric named rate (e.g. "heartbeats/s").
func MeasureParallel(b *testing.B, pg bool, rate string, op func(i int) error) {
	var next atomic.Int64
	cpu := StartCPU(b, pg)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(int(next.Add(1) - 1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	cpu.Report(b)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), rate)
}
