package people

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// AccessEnder ends, at once, every access a person holds in one part of the
// system: package authz ends their tokens and consents, package mandate
// (later) their mandates. Deactivation calls every AccessEnder it was given;
// people imports none of them.
type AccessEnder interface {
	// EndAccess ends everything subject ("staff:<id>") holds here and returns
	// how many things ended. Ending nothing is not an error.
	EndAccess(ctx context.Context, subject string) (int, error)
}

// AdminStore is what structure administration needs beyond Store. The gorm
// store implements it (store/offboard.go, store/banners.go).
type AdminStore interface {
	BannerStore
	// ListStructures returns every structure, by name.
	ListStructures(ctx context.Context) ([]Structure, error)
	// CancelEnrolmentsOf makes every unused, unexpired enrolment link of
	// staffID stop working at now, except the one whose hash is except
	// (nil: all of them); returns how many stopped.
	CancelEnrolmentsOf(ctx context.Context, staffID string, except []byte, now time.Time) (int, error)
	// LastInvitations returns, for every pending account of structureID,
	// when its newest enrolment link was made.
	LastInvitations(ctx context.Context, structureID string) (map[string]time.Time, error)
	// ListStaffOverview is ListStaff without secrets (no password hash, no
	// second-factor secret), for listing pages.
	ListStaffOverview(ctx context.Context, structureID string) ([]Staff, error)
}

// AdminConfig tunes structure administration.
type AdminConfig struct {
	// Notifier sends invitations by email; required to invite.
	Notifier notify.Notifier
	// EnrolmentURL turns an enrolment token into the link sent by email.
	EnrolmentURL func(token string) string
	// InactivityDays flags staff not signed in for that many days; 90.
	InactivityDays int
	// AccessEnders end a deactivated person's tokens, consents and mandates.
	AccessEnders []AccessEnder
}

// Admin runs structure administration: inviting, deactivating and
// reactivating staff, the inactivity report, structures and banners. Every
// method checks the caller's permission with Authorize first.
type Admin struct {
	svc   *Service
	store AdminStore
	cfg   AdminConfig
}

// NewAdmin returns the administration service over svc's store and st.
func NewAdmin(svc *Service, st AdminStore, cfg AdminConfig) *Admin {
	if cfg.InactivityDays <= 0 {
		cfg.InactivityDays = 90
	}
	if cfg.EnrolmentURL == nil {
		cfg.EnrolmentURL = func(token string) string { return "/enrol?token=" + token }
	}
	return &Admin{svc: svc, store: st, cfg: cfg}
}

// Config returns the effective configuration.
func (a *Admin) Config() AdminConfig { return a.cfg }

// Now is the time on the service's clock.
func (a *Admin) Now() time.Time { return a.svc.clock.Now() }

// Errors of administration, worded for pages (package ui translates them).
var (
	// ErrNotFound: no such record in a structure the caller may see (also
	// the answer for another structure's records, so nothing leaks).
	ErrNotFound = errors.New("there is no such record here")
	// ErrEmailTaken: the email already has an account that is not a pending
	// invitation of this structure.
	ErrEmailTaken = errors.New("this email address already has an account")
	// ErrRoleNotAllowed: structure admins invite and manage mediators and
	// auditors only; admins are managed by platform admins.
	ErrRoleNotAllowed = errors.New("you may not give or manage this role")
	// ErrSelf: nobody deactivates their own account.
	ErrSelf = errors.New("you cannot do this to your own account")
	// ErrInvalidStructureName: empty or longer than 100 characters.
	ErrInvalidStructureName = errors.New("enter the structure's name, at most 100 characters")
	// ErrStructureExists: a structure of that name exists.
	ErrStructureExists = errors.New("a structure of this name exists already")
	// ErrNotDeactivated: reactivating an account that is not deactivated.
	ErrNotDeactivated = errors.New("this account is not deactivated")
	// ErrNoNotifier: no email notifier is configured, so nobody can be invited.
	ErrNoNotifier = errors.New("no email delivery is configured")
)

// StaffInStructure returns one staff account of structureID, if p may
// manage that structure's staff. ErrForbidden when p may not manage staff at
// all, ErrNotFound for an unknown account or one of another structure.
func (a *Admin) StaffInStructure(ctx context.Context, p Principal, structureID, staffID string) (Staff, error) {
	if err := a.checkStructure(ctx, p, PermManageStaff, structureID); err != nil {
		return Staff{}, err
	}
	st, err := a.svc.store.GetStaff(ctx, staffID)
	if errors.Is(err, mandate.ErrNotFound) || (err == nil && st.StructureID != structureID) {
		return Staff{}, ErrNotFound
	}
	if err != nil {
		return Staff{}, fmt.Errorf("load staff %s: %w", staffID, err)
	}
	return st, nil
}

// checkStructure is the permission check of every structure-scoped action:
// ErrForbidden when p's role may never do perm, ErrNotFound when the
// structure is another's or does not exist.
func (a *Admin) checkStructure(ctx context.Context, p Principal, perm Permission, structureID string) error {
	if !MayEver(p, perm) {
		return fmt.Errorf("%w: %s", ErrForbidden, perm)
	}
	if structureID == "" || len(structureID) > 100 || !Can(p, perm, structureID) {
		return ErrNotFound
	}
	if _, err := a.svc.store.GetStructure(ctx, structureID); err != nil {
		if errors.Is(err, mandate.ErrNotFound) {
			return ErrNotFound
		}
		return fmt.Errorf("load structure %s: %w", structureID, err)
	}
	return nil
}

// MayEver reports whether p's role holds perm in some structure (their own,
// or any for platform staff): what tells "this page is not for you" (403)
// from "this record is not yours" (404).
func MayEver(p Principal, perm Permission) bool {
	if perm == PermManageStructures {
		return Can(p, perm, "")
	}
	if p.Platform {
		return Can(p, perm, "any")
	}
	return p.StructureID != "" && Can(p, perm, p.StructureID)
}

// Structure returns a structure p may administer.
func (a *Admin) Structure(ctx context.Context, p Principal, id string) (Structure, error) {
	if err := a.checkStructure(ctx, p, PermManageStaff, id); err != nil {
		return Structure{}, err
	}
	return a.svc.Structure(ctx, id)
}

// Structures lists every structure (platform admins).
func (a *Admin) Structures(ctx context.Context, p Principal) ([]Structure, error) {
	if err := Authorize(p, PermManageStructures, ""); err != nil {
		return nil, err
	}
	list, err := a.store.ListStructures(ctx)
	if err != nil {
		return nil, fmt.Errorf("list structures: %w", err)
	}
	return list, nil
}

// CreateStructure creates a structure (platform admins), audited.
func (a *Admin) CreateStructure(ctx context.Context, p Principal, name string) (Structure, error) {
	if err := Authorize(p, PermManageStructures, ""); err != nil {
		return Structure{}, err
	}
	name = strings.Join(strings.Fields(name), " ")
	if name == "" || utf8.RuneCountInString(name) > 100 || !printable(name) {
		return Structure{}, ErrInvalidStructureName
	}
	if _, err := a.svc.store.FindStructureByName(ctx, name); err == nil {
		return Structure{}, ErrStructureExists
	} else if !errors.Is(err, mandate.ErrNotFound) {
		return Structure{}, fmt.Errorf("find structure: %w", err)
	}
	st := Structure{ID: uuid.NewString(), Name: name, CreatedAt: a.svc.clock.Now()}
	if err := a.svc.record(ctx, audit.Event{
		Actor: staffActor(p.ID, p.DisplayName), Structure: st.ID,
		Action: audit.ActionStructureCreated, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return Structure{}, err
	}
	if err := a.svc.store.CreateStructure(ctx, st); err != nil {
		if errors.Is(err, mandate.ErrAlreadyExists) {
			return Structure{}, ErrStructureExists
		}
		return Structure{}, fmt.Errorf("create structure: %w", err)
	}
	return st, nil
}

// ListStaff returns a structure's staff, oldest first.
func (a *Admin) ListStaff(ctx context.Context, p Principal, structureID string) ([]Staff, error) {
	if err := a.checkStructure(ctx, p, PermManageStaff, structureID); err != nil {
		return nil, err
	}
	list, err := a.store.ListStaffOverview(ctx, structureID)
	if err != nil {
		return nil, fmt.Errorf("list staff of %s: %w", structureID, err)
	}
	return list, nil
}

// mayManage reports whether p may manage target's account (same
// structure already checked): structure admins manage mediators and
// auditors, platform admins everyone; nobody manages themselves.
func mayManage(p Principal, target Staff) error {
	if target.ID == p.ID {
		return ErrSelf
	}
	if (target.Role == RoleAdmin || target.Platform) && !p.Platform {
		return ErrRoleNotAllowed
	}
	return nil
}

// Deactivate deactivates a staff account and ends, at once, every session,
// enrolment link, token, consent and (through AccessEnders) mandate of that
// person. It is recorded first, with the acting admin as actor. Deactivating
// an account already deactivated runs the endings again (so an
// interrupted deactivation can be finished) and records it again.
func (a *Admin) Deactivate(ctx context.Context, p Principal, structureID, staffID string) error {
	target, err := a.StaffInStructure(ctx, p, structureID, staffID)
	if err != nil {
		return err
	}
	if err := mayManage(p, target); err != nil {
		return err
	}
	if err := a.svc.record(ctx, audit.Event{
		Actor: staffActor(p.ID, p.DisplayName), Structure: structureID, Target: StaffSubject(target.ID),
		Action: audit.ActionStaffDeactivated, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return err
	}
	err = a.svc.store.UpdateStaff(ctx, target.ID, func(st *Staff) error {
		st.Status = StaffDeactivated
		return nil
	})
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", target.ID, err)
	}
	return a.endAccess(ctx, target.ID)
}

// endAccess ends what a deactivated account still holds. Each step runs even
// when an earlier one failed; the errors are returned together.
func (a *Admin) endAccess(ctx context.Context, staffID string) error {
	subject := StaffSubject(staffID)
	var errs []error
	sessions, err := a.svc.store.DeleteSessionsOf(ctx, subject)
	if err != nil {
		errs = append(errs, fmt.Errorf("end sessions: %w", err))
	}
	links, err := a.store.CancelEnrolmentsOf(ctx, staffID, nil, a.svc.clock.Now())
	if err != nil {
		errs = append(errs, fmt.Errorf("cancel enrolment links: %w", err))
	}
	ended := 0
	for _, e := range a.cfg.AccessEnders {
		n, err := e.EndAccess(ctx, subject)
		ended += n
		if err != nil {
			errs = append(errs, fmt.Errorf("end access: %w", err))
		}
	}
	a.svc.log.InfoContext(ctx, "staff deactivated", "staff_id", staffID,
		"sessions", sessions, "links", links, "grants", ended)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deactivate %s: %w", staffID, err)
	}
	return nil
}

// Reactivate lets a deactivated account sign in again. Nothing it held comes
// back: sessions, tokens and consents stay ended. An account deactivated
// before finishing its enrolment goes back to pending (invite it again).
func (a *Admin) Reactivate(ctx context.Context, p Principal, structureID, staffID string) error {
	target, err := a.StaffInStructure(ctx, p, structureID, staffID)
	if err != nil {
		return err
	}
	if err := mayManage(p, target); err != nil {
		return err
	}
	if target.Status != StaffDeactivated {
		return ErrNotDeactivated
	}
	if err := a.svc.record(ctx, audit.Event{
		Actor: staffActor(p.ID, p.DisplayName), Structure: structureID, Target: StaffSubject(target.ID),
		Action: audit.ActionStaffReactivated, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return err
	}
	err = a.svc.store.UpdateStaff(ctx, target.ID, func(st *Staff) error {
		if st.Status != StaffDeactivated {
			return ErrNotDeactivated
		}
		st.Status = StaffActive
		if st.PasswordHash == "" || st.SealedTOTP == nil {
			st.Status = StaffPending
		}
		return nil
	})
	if errors.Is(err, ErrNotDeactivated) {
		return err
	}
	if err != nil {
		return fmt.Errorf("reactivate %s: %w", target.ID, err)
	}
	a.svc.log.InfoContext(ctx, "staff reactivated", "staff_id", target.ID)
	return nil
}

// InactivityReport is what the admin home flags.
type InactivityReport struct {
	Days int
	// Inactive are active accounts not signed in for Days days (or never,
	// when they were set up more than Days days ago), longest first.
	Inactive []Staff
	// StaleInvitations are pending accounts whose newest link expired
	// unused: the person never signed in.
	StaleInvitations []StaleInvitation
}

// StaleInvitation is a pending account and when it was last invited.
type StaleInvitation struct {
	Staff     Staff
	InvitedAt time.Time
}

// Inactivity builds the inactivity report of a structure.
func (a *Admin) Inactivity(ctx context.Context, p Principal, structureID string) (InactivityReport, error) {
	list, err := a.ListStaff(ctx, p, structureID)
	if err != nil {
		return InactivityReport{}, err
	}
	return a.inactivity(ctx, structureID, list)
}

func (a *Admin) inactivity(ctx context.Context, structureID string, list []Staff) (InactivityReport, error) {
	now := a.svc.clock.Now()
	cutoff := now.AddDate(0, 0, -a.cfg.InactivityDays)
	r := InactivityReport{Days: a.cfg.InactivityDays}
	var invited map[string]time.Time
	for _, st := range list {
		switch st.Status {
		case StaffActive:
			last := st.CreatedAt
			if st.LastSignInAt != nil {
				last = *st.LastSignInAt
			}
			if last.Before(cutoff) {
				r.Inactive = append(r.Inactive, st)
			}
		case StaffPending:
			if invited == nil {
				var err error
				if invited, err = a.store.LastInvitations(ctx, structureID); err != nil {
					return InactivityReport{}, fmt.Errorf("invitations of %s: %w", structureID, err)
				}
			}
			at, ok := invited[st.ID]
			if !ok {
				at = st.CreatedAt
			}
			if !now.Before(at.Add(a.svc.cfg.EnrolmentTTL)) {
				r.StaleInvitations = append(r.StaleInvitations, StaleInvitation{Staff: st, InvitedAt: at})
			}
		}
	}
	slices.SortStableFunc(r.Inactive, func(x, y Staff) int { return lastSeen(&x).Compare(lastSeen(&y)) })
	return r, nil
}

func lastSeen(s *Staff) time.Time {
	if s.LastSignInAt != nil {
		return *s.LastSignInAt
	}
	return s.CreatedAt
}

// Overview is what the admin home shows of one structure.
type Overview struct {
	Structure Structure
	// Holders is how many holders the structure serves (-1 when the store
	// cannot count them).
	Holders    int
	Staff      []Staff
	Inactivity InactivityReport
	Banners    []Banner
}

// Overview gathers the admin home of a structure in one call.
func (a *Admin) Overview(ctx context.Context, p Principal, structureID string) (Overview, error) {
	st, err := a.Structure(ctx, p, structureID)
	if err != nil {
		return Overview{}, err
	}
	list, err := a.store.ListStaffOverview(ctx, structureID)
	if err != nil {
		return Overview{}, fmt.Errorf("list staff of %s: %w", structureID, err)
	}
	rep, err := a.inactivity(ctx, structureID, list)
	if err != nil {
		return Overview{}, err
	}
	ov := Overview{Structure: st, Staff: list, Inactivity: rep, Holders: -1}
	if hc, ok := a.store.(interface {
		CountHolders(ctx context.Context, structureID string) (int, error)
	}); ok {
		if ov.Holders, err = hc.CountHolders(ctx, structureID); err != nil {
			return Overview{}, fmt.Errorf("count holders of %s: %w", structureID, err)
		}
	}
	if Can(p, PermManageBanners, structureID) {
		if ov.Banners, err = a.store.ListBanners(ctx, structureID); err != nil {
			return Overview{}, fmt.Errorf("banners of %s: %w", structureID, err)
		}
	}
	return ov, nil
}

// printable reports whether s holds no control characters.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}
