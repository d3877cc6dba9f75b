package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Filter selects events for Query. Zero fields match everything.
type Filter struct {
	Structure string
	Actor     string // a staff member's, holder's or client's id
	Holder    string
	MandateID string
	ClientID  string
	Action    Action
	Outcome   Outcome
	Since     time.Time // inclusive
	Until     time.Time // exclusive
	// Before is the cursor: only events with seq < Before (0: from the newest).
	Before int64
	// Limit caps the page (default 100, at most 1000).
	Limit int
}

// Page is one page of Query, newest first. Next is the cursor of the next
// page (Filter.Before), 0 when there is none.
type Page struct {
	Events []Event
	Next   int64
}

// Query returns events matching f, newest first, with the personal fields
// of people not erased (an erased person's fields are empty).
func (l *Log) Query(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	if f.Action != "" && !f.Action.Valid() {
		return Page{}, fmt.Errorf("%w: unknown action %q", ErrInvalid, trunc(string(f.Action)))
	}
	leaves, err := l.cfg.Store.AuditQuery(ctx, f)
	if err != nil {
		return Page{}, fmt.Errorf("query audit log: %w", err)
	}
	seqs := make([]int64, len(leaves))
	for i, lf := range leaves {
		seqs[i] = lf.Seq
	}
	readable, err := l.cfg.Store.AuditReadableOf(ctx, seqs)
	if err != nil {
		return Page{}, fmt.Errorf("query audit log: %w", err)
	}
	keys := map[personPeriod]*openedKey{}
	if err := l.readKeys(ctx, readable, keys); err != nil {
		return Page{}, fmt.Errorf("query audit log: %w", err)
	}
	fields := map[int64]map[string]string{}
	for _, r := range readable {
		m, ok, err := openReadable(keys, r)
		if err != nil {
			return Page{}, fmt.Errorf("query audit log: %w", err)
		}
		if !ok {
			continue
		}
		if fields[r.Seq] == nil {
			fields[r.Seq] = map[string]string{}
		}
		for k, v := range m {
			fields[r.Seq][k] = v
		}
	}
	page := Page{Events: make([]Event, 0, len(leaves))}
	for _, lf := range leaves {
		e, err := eventFrom(lf, fields[lf.Seq])
		if err != nil {
			return Page{}, fmt.Errorf("query audit log: %w", err)
		}
		page.Events = append(page.Events, e)
	}
	if len(leaves) == f.Limit && leaves[len(leaves)-1].Seq > 0 {
		page.Next = leaves[len(leaves)-1].Seq
	}
	return page, nil
}

// eventFrom rebuilds an event from its leaf and its opened personal fields.
func eventFrom(lf Leaf, personal map[string]string) (Event, error) {
	m, err := ParseLeaf(lf.Data)
	if err != nil {
		return Event{}, fmt.Errorf("event %d: %w", lf.Seq, err)
	}
	get := func(name string) string {
		if v, ok := m[name]; ok {
			return v
		}
		return personal[name]
	}
	t, err := time.Parse(time.RFC3339Nano, m[FieldTime])
	if err != nil {
		return Event{}, fmt.Errorf("event %d: time: %w", lf.Seq, err)
	}
	seq, _ := strconv.ParseInt(m[FieldSeq], 10, 64)
	return Event{
		Seq: seq, Time: t,
		Actor:  Actor{Kind: ActorKind(m[FieldActorKind]), ID: get(FieldActorID), Name: get(FieldActorName)},
		Holder: get(FieldHolder), Structure: m[FieldStructure], Action: Action(m[FieldAction]),
		Target: get(FieldTarget), MandateID: m[FieldMandateID], ClientID: m[FieldClientID],
		Outcome: Outcome(m[FieldOutcome]), Reason: m[FieldReason], RequestID: m[FieldRequestID],
	}, nil
}
