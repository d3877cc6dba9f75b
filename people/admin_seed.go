package people

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mandated/mandated/mandate"
)

// SeedStore is what SeedStructure writes to: the gorm store.
type SeedStore interface {
	Store
	CreateHolder(ctx context.Context, h Holder, structureID string) error
}

// SeedReport says what SeedStructure created.
type SeedReport struct {
	Structure Structure
	Staff     int
	Holders   int
}

// SeedStructure fills a structure (created if needed) with a synthetic data
// set for measuring the administration pages: staff accounts (one admin,
// then mediators and auditors; most active with sign-ins spread over the
// last 200 days, some pending, some deactivated) and holders served by the
// structure. It is for development and benchmarks only: it writes straight
// to the store, nothing is audited, and the accounts have no password (they
// cannot sign in). Emails and mailboxes are under example.org, numbered
// from the run's start so that several runs add up.
func SeedStructure(ctx context.Context, st SeedStore, clock mandate.Clock, name string, staff, holders int) (SeedReport, error) {
	if clock == nil {
		clock = mandate.SystemClock{}
	}
	if name == "" || staff < 0 || holders < 0 {
		return SeedReport{}, errors.New("seed: a structure name and non-negative counts are needed")
	}
	s := &Service{store: st, clock: clock}
	structure, err := s.ensureStructure(ctx, name)
	if err != nil {
		return SeedReport{}, err
	}
	r := SeedReport{Structure: structure}
	now := clock.Now()
	run := uuid.NewString()[:8]
	for i := range staff {
		role := RoleMediator
		switch {
		case i == 0:
			role = RoleAdmin
		case i%10 == 0:
			role = RoleAuditor
		}
		status := StaffActive
		switch {
		case i%25 == 7:
			status = StaffPending
		case i%40 == 9:
			status = StaffDeactivated
		}
		created := now.Add(-time.Duration(400-i%365) * 24 * time.Hour)
		acc := Staff{
			ID: uuid.NewString(), Email: fmt.Sprintf("staff-%s-%04d@example.org", run, i),
			DisplayName: fmt.Sprintf("Agent %04d", i), Role: role, StructureID: structure.ID,
			Status: status, CreatedAt: created,
		}
		if status != StaffPending && i%13 != 0 { // a few never signed in
			last := now.Add(-time.Duration(i%200) * 24 * time.Hour)
			acc.LastSignInAt = &last
		}
		if err := st.CreateStaff(ctx, acc); err != nil {
			return r, fmt.Errorf("seed staff %d: %w", i, err)
		}
		if status == StaffPending {
			e := Enrolment{TokenHash: hashToken(acc.ID), StaffID: acc.ID, CreatedAt: created, ExpiresAt: created.Add(72 * time.Hour)}
			if err := st.CreateEnrolment(ctx, e); err != nil {
				return r, fmt.Errorf("seed invitation %d: %w", i, err)
			}
		}
		r.Staff++
	}
	for i := range holders {
		h := Holder{
			ID: uuid.NewString(), Mailbox: fmt.Sprintf("personne-%s-%05d@example.org", run, i),
			DisplayName: fmt.Sprintf("Personne %05d", i), Email: fmt.Sprintf("contact-%s-%05d@example.org", run, i),
			Language: "fr", CreatedAt: now,
		}
		if err := st.CreateHolder(ctx, h, structure.ID); err != nil {
			return r, fmt.Errorf("seed holder %d: %w", i, err)
		}
		r.Holders++
	}
	return r, nil
}
