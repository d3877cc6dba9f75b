package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/mandated/mandated/mandate"
)

// spaceList stores a list of tokens (OAuth2 scopes, exclusions) joined by
// single spaces in a text column; nil is stored as "" and read back as nil.
// A token that is empty or holds white space cannot round-trip, so it is an
// error.
type spaceList []string

func (l spaceList) Value() (driver.Value, error) {
	for _, v := range l {
		if v == "" || strings.ContainsFunc(v, unicode.IsSpace) {
			return nil, fmt.Errorf("list item %q is empty or holds white space", v)
		}
	}
	return strings.Join(l, " "), nil
}

func (l *spaceList) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*l = nil
	case string:
		*l = spaceList(strings.Fields(v))
	case []byte:
		*l = spaceList(strings.Fields(string(v)))
	default:
		return fmt.Errorf("scan space-separated list from %T", src)
	}
	if len(*l) == 0 {
		*l = nil
	}
	return nil
}

// timePtr stores the zero time as NULL.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := utc(t)
	return &u
}

// timeOf reads NULL back as the zero time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func strOf(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// bytesOrNil stores and reads empty bytes as NULL / nil.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

type mandateRow struct {
	ID              string `gorm:"primaryKey"`
	Kind            string
	StructureID     string
	HolderID        string
	Mailbox         string
	DelegateID      string
	ClientID        *string
	Scopes          spaceList
	Exclusions      spaceList
	Purpose         string
	PurposeCategory string
	Presence        string
	DurationNS      int64 `gorm:"column:duration_ns"`
	NotBefore       *time.Time
	NotAfter        *time.Time
	AnswerBy        *time.Time
	State           string
	EndReason       string
	EndedBy         string
	GrantID         string
	ConsentVersion  string
	ConsentHash     string
	ConsentReceipt  []byte
	LeaseUntil      *time.Time
	CreatedAt       time.Time `gorm:"autoCreateTime:false"`
	DecidedAt       *time.Time
	ActivatedAt     *time.Time
	EndedAt         *time.Time
	Version         int
}

func (mandateRow) TableName() string { return "mandates" }

func newMandateRow(m mandate.Mandate) mandateRow {
	return mandateRow{
		ID: m.ID, Kind: string(m.Kind), StructureID: m.StructureID, HolderID: m.HolderID, Mailbox: m.Mailbox,
		DelegateID: m.DelegateID, ClientID: strPtr(m.ClientID),
		Scopes: spaceList(m.Scopes), Exclusions: spaceList(m.Exclusions),
		Purpose: m.Purpose, PurposeCategory: string(m.PurposeCategory), Presence: string(m.Presence),
		DurationNS: int64(m.Duration),
		NotBefore:  timePtr(m.NotBefore), NotAfter: timePtr(m.NotAfter), AnswerBy: timePtr(m.AnswerBy),
		State: string(m.State), EndReason: string(m.EndReason), EndedBy: m.EndedBy, GrantID: m.GrantID,
		ConsentVersion: m.ConsentVersion, ConsentHash: m.ConsentHash, ConsentReceipt: bytesOrNil(m.ConsentReceipt),
		LeaseUntil: timePtr(m.LeaseUntil), CreatedAt: utc(m.CreatedAt), DecidedAt: timePtr(m.DecidedAt),
		ActivatedAt: timePtr(m.ActivatedAt), EndedAt: timePtr(m.EndedAt), Version: m.Version,
	}
}

func (r mandateRow) toMandate() mandate.Mandate {
	return mandate.Mandate{
		ID: r.ID, Kind: mandate.Kind(r.Kind), StructureID: r.StructureID, HolderID: r.HolderID, Mailbox: r.Mailbox,
		DelegateID: r.DelegateID, ClientID: strOf(r.ClientID),
		Scopes: []string(r.Scopes), Exclusions: []string(r.Exclusions),
		Purpose: r.Purpose, PurposeCategory: mandate.PurposeCategory(r.PurposeCategory),
		Presence: mandate.Presence(r.Presence), Duration: time.Duration(r.DurationNS),
		NotBefore: timeOf(r.NotBefore), NotAfter: timeOf(r.NotAfter), AnswerBy: timeOf(r.AnswerBy),
		State: mandate.State(r.State), EndReason: mandate.EndReason(r.EndReason), EndedBy: r.EndedBy,
		GrantID: r.GrantID, ConsentVersion: r.ConsentVersion, ConsentHash: r.ConsentHash,
		ConsentReceipt: bytesOrNil(r.ConsentReceipt), LeaseUntil: timeOf(r.LeaseUntil), CreatedAt: r.CreatedAt.UTC(),
		DecidedAt: timeOf(r.DecidedAt), ActivatedAt: timeOf(r.ActivatedAt), EndedAt: timeOf(r.EndedAt), Version: r.Version,
	}
}

// CreateMandate stores a new mandate with Version 1 (CreatedAt defaults to
// now). mandate.ErrAlreadyExists when the id is taken; mandate.ErrNotFound
// when its structure, holder, delegate or client does not exist.
func (s *Store) CreateMandate(ctx context.Context, m mandate.Mandate) error {
	if m.ID == "" {
		return errors.New("create mandate: an id is required")
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = s.now()
	}
	m.Version = 1
	row := newMandateRow(m)
	return s.wrap(s.w(ctx).Create(&row).Error, "create mandate %s", m.ID)
}

// GetMandate returns mandate.ErrNotFound when there is none.
func (s *Store) GetMandate(ctx context.Context, id string) (mandate.Mandate, error) {
	return s.findMandate(s.r(ctx), id)
}

func (s *Store) findMandate(db *gorm.DB, id string) (mandate.Mandate, error) {
	var row mandateRow
	err := db.Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return mandate.Mandate{}, notFound("mandate %s", id)
	}
	if err != nil {
		return mandate.Mandate{}, s.wrap(err, "load mandate %s", id)
	}
	return row.toMandate(), nil
}

// UpdateMandate reads one mandate (row-locked on PostgreSQL; SQLite's single
// writer excludes every other write), lets fn change it, and writes it with
// Version+1, in one transaction. fn cannot change the ID or the Version;
// its error aborts and is returned as is.
func (s *Store) UpdateMandate(ctx context.Context, id string, fn func(*mandate.Mandate) error) (mandate.Mandate, error) {
	var out mandate.Mandate
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		m, err := s.findMandate(s.forUpdate(tx), id)
		if err != nil {
			return fmt.Errorf("update mandate: %w", err)
		}
		old := m.Version
		if err := fn(&m); err != nil {
			return err
		}
		m.ID, m.Version = id, old+1
		row := newMandateRow(m)
		// The version guard cannot fail under the lock; it keeps a lost
		// update impossible should the locking ever change.
		res := tx.Model(&mandateRow{}).Where("id = ? AND version = ?", id, old).Select("*").Updates(&row)
		if res.Error != nil {
			return s.wrap(res.Error, "update mandate %s", id)
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("update mandate %s: changed concurrently: %w", id, mandate.ErrConflict)
		}
		out = row.toMandate()
		return nil
	})
	if err != nil {
		return mandate.Mandate{}, err
	}
	return out, nil
}

// liveStates are the states in which a mandate may have tokens and a lease.
var liveStates = []string{string(mandate.StateApproved), string(mandate.StateActive)}

// openStates are the states a sweep may move a mandate from (the predicate
// of the partial index mandates_open_idx, migration 00010).
var openStates = []string{string(mandate.StateRequested), string(mandate.StateApproved), string(mandate.StateActive)}

// ExtendLease sets LeaseUntil to until in one UPDATE whose WHERE holds every
// condition (the heartbeat hot path); only when nothing was updated does a
// second query tell mandate.ErrNotFound (no such mandate of that holder)
// from mandate.ErrConflict (lapsed, ended, past NotAfter, or no presence
// lease). It does not bump Version.
func (s *Store) ExtendLease(ctx context.Context, id, holderID string, now, until time.Time) error {
	now, until = utc(now), utc(until)
	if !until.After(now) {
		return fmt.Errorf("extend lease of mandate %s: lease end %s is not after now %s", id, until, now)
	}
	res := s.w(ctx).Model(&mandateRow{}).
		Where("id = ? AND holder_id = ? AND state IN ? AND presence = ? AND not_after > ? AND lease_until > ?",
			id, holderID, liveStates, string(mandate.PresenceRequired), now, now).
		Update("lease_until", until)
	if res.Error != nil {
		return s.wrap(res.Error, "extend lease of mandate %s", id)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := s.r(ctx).Model(&mandateRow{}).Where("id = ? AND holder_id = ?", id, holderID).Count(&n).Error; err != nil {
		return s.wrap(err, "extend lease of mandate %s", id)
	}
	if n == 0 {
		return notFound("mandate %s of holder %s", id, holderID)
	}
	return fmt.Errorf("extend lease of mandate %s: lapsed, ended or without a presence lease: %w", id, mandate.ErrConflict)
}

// maxPage bounds a page of mandates.
const maxPage = 500

func clampLimit(n int) int { return min(max(n, 1), maxPage) }

// ListMandates pages through mandates newest first (CreatedAt, then ID,
// descending), filtered by q; q.Limit is clamped to 1..500.
func (s *Store) ListMandates(ctx context.Context, q mandate.Query) ([]mandate.Mandate, error) {
	db := s.r(ctx).Model(&mandateRow{})
	if q.StructureID != "" {
		db = db.Where("structure_id = ?", q.StructureID)
	}
	if q.HolderID != "" {
		db = db.Where("holder_id = ?", q.HolderID)
	}
	if q.DelegateID != "" {
		db = db.Where("delegate_id = ?", q.DelegateID)
	}
	if len(q.States) > 0 {
		states := make([]string, len(q.States))
		for i, st := range q.States {
			states[i] = string(st)
		}
		db = db.Where("state IN ?", states)
	}
	if !q.BeforeCreated.IsZero() {
		db = db.Where("(created_at, id) < (?, ?)", utc(q.BeforeCreated), q.BeforeID)
	}
	var rows []mandateRow
	if err := db.Order("created_at DESC, id DESC").Limit(clampLimit(q.Limit)).Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list mandates")
	}
	return toMandates(rows), nil
}

// DueMandates lists up to limit (clamped to 1..500) mandates a sweep at now
// must move, oldest first: unanswered requests, closed windows, and
// sessions whose presence lease lapsed (never delegations: a delegation
// outlives its lease). A time that is not set counts as the distant past,
// as the zero time.Time does: a live presence session without a lease is
// due.
func (s *Store) DueMandates(ctx context.Context, now time.Time, limit int) ([]mandate.Mandate, error) {
	now = utc(now)
	var rows []mandateRow
	// The outer state IN (...) is what every branch implies: it lets the
	// planner use the partial index of open mandates (mandates_open_idx).
	err := s.r(ctx).Where("state IN ?", openStates).Where(
		"((state = ? AND (answer_by IS NULL OR answer_by <= ?))"+
			" OR (state IN ? AND (not_after IS NULL OR not_after <= ?))"+
			" OR (state IN ? AND kind = ? AND presence = ? AND (lease_until IS NULL OR lease_until <= ?)))",
		string(mandate.StateRequested), now,
		liveStates, now,
		liveStates, string(mandate.KindSession), string(mandate.PresenceRequired), now).
		Order("created_at, id").Limit(clampLimit(limit)).Find(&rows).Error
	if err != nil {
		return nil, s.wrap(err, "list due mandates")
	}
	return toMandates(rows), nil
}

func toMandates(rows []mandateRow) []mandate.Mandate {
	out := make([]mandate.Mandate, len(rows))
	for i, r := range rows {
		out[i] = r.toMandate()
	}
	return out
}

type mandatePolicyRow struct {
	StructureID             string `gorm:"primaryKey"`
	AllowedScopes           spaceList
	MaxSessionDurationNS    int64 `gorm:"column:max_session_duration_ns"`
	MaxDelegationDurationNS int64 `gorm:"column:max_delegation_duration_ns"`
	AllowRelaxedPresence    bool
	UpdatedAt               time.Time `gorm:"autoUpdateTime:false"`
	UpdatedBy               string
}

func (mandatePolicyRow) TableName() string { return "mandate_policies" }

// GetPolicy returns a structure's policy; mandate.ErrNotFound when it has
// none.
func (s *Store) GetPolicy(ctx context.Context, structureID string) (mandate.Policy, error) {
	var row mandatePolicyRow
	err := s.r(ctx).Where("structure_id = ?", structureID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return mandate.Policy{}, notFound("mandate policy of structure %s", structureID)
	}
	if err != nil {
		return mandate.Policy{}, s.wrap(err, "load mandate policy of structure %s", structureID)
	}
	return mandate.Policy{
		StructureID: row.StructureID, AllowedScopes: []string(row.AllowedScopes),
		MaxSessionDuration:    time.Duration(row.MaxSessionDurationNS),
		MaxDelegationDuration: time.Duration(row.MaxDelegationDurationNS),
		AllowRelaxedPresence:  row.AllowRelaxedPresence, UpdatedAt: row.UpdatedAt.UTC(), UpdatedBy: row.UpdatedBy,
	}, nil
}

// PutPolicy creates or replaces a structure's policy (UpdatedAt defaults to
// now); mandate.ErrNotFound when the structure does not exist.
func (s *Store) PutPolicy(ctx context.Context, p mandate.Policy) error {
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = s.now()
	}
	row := mandatePolicyRow{
		StructureID: p.StructureID, AllowedScopes: spaceList(p.AllowedScopes),
		MaxSessionDurationNS: int64(p.MaxSessionDuration), MaxDelegationDurationNS: int64(p.MaxDelegationDuration),
		AllowRelaxedPresence: p.AllowRelaxedPresence, UpdatedAt: utc(p.UpdatedAt), UpdatedBy: p.UpdatedBy,
	}
	err := s.w(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "structure_id"}}, UpdateAll: true}).
		Create(&row).Error
	return s.wrap(err, "put mandate policy of structure %s", p.StructureID)
}
