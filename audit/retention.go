package audit

import (
	"context"
	"fmt"
	"time"
)

// Retention is what ApplyRetention did (or PlanRetention would do).
type Retention struct {
	// Before is the cutoff: personal fields of events before it may go.
	Before time.Time
	// Period is the first period kept: every period before it (months
	// wholly before Before) is erased.
	Period string
	RetentionCount
	// Skipped is true when another process was applying retention.
	Skipped bool
}

// PlanRetention counts what ApplyRetention(ctx, before) would erase.
func (l *Log) PlanRetention(ctx context.Context, before time.Time) (Retention, error) {
	r := Retention{Before: before.UTC(), Period: Period(before)}
	n, err := l.cfg.Store.AuditRetention(ctx, r.Period, r.Before, false)
	if err != nil {
		return Retention{}, fmt.Errorf("plan audit retention: %w", err)
	}
	r.RetentionCount = n
	return r, nil
}

// ApplyRetention erases, for every person, the keys and readable fields of
// the periods that ended at or before before (whole UTC months), and the
// legacy keys none of whose events is at or after before. Leaves, hashes and
// checkpoints stay: every proof still verifies, and those events' personal
// fields show as erased. When there is something to erase, it first
// records an audit.retention_applied event (system actor) saying what; no
// event, no erasure. On PostgreSQL one replica at a time runs it (the
// others return Skipped); running it again erases nothing more.
func (l *Log) ApplyRetention(ctx context.Context, before time.Time) (Retention, error) {
	var r Retention
	ran, err := l.cfg.Store.WithAuditRetentionLock(ctx, func(ctx context.Context) error {
		var err error
		if r, err = l.PlanRetention(ctx, before); err != nil {
			return err
		}
		if r.Keys == 0 && r.Readable == 0 {
			return nil
		}
		if _, err := l.Record(ctx, Event{
			Actor: Actor{Kind: ActorSystem}, Action: ActionRetentionApplied, Outcome: OutcomeSuccess,
			Target: "before " + r.Before.Format(time.RFC3339),
			Reason: fmt.Sprintf("retention: erase the person keys and readable fields of periods before %s, "+
				"and legacy keys whose events are all before %s (%d keys, %d readable rows)",
				r.Period, r.Before.Format(time.RFC3339), r.Keys, r.Readable),
		}); err != nil {
			return err
		}
		n, err := l.cfg.Store.AuditRetention(ctx, r.Period, r.Before, true)
		if err != nil {
			return err
		}
		r.RetentionCount = n
		l.keys.forget(func(pp personPeriod) bool { return pp.period < r.Period })
		l.forgetWriterKeys()
		return nil
	})
	if err != nil {
		return Retention{}, fmt.Errorf("apply audit retention: %w", err)
	}
	if !ran {
		return Retention{Before: before.UTC(), Period: Period(before), Skipped: true}, nil
	}
	return r, nil
}
