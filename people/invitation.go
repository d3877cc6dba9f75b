package people

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// Invitation is who an admin invites.
type Invitation struct {
	Email    string
	Name     string
	Role     string // mediator or auditor; admin for platform admins only
	Language string // of the email: "fr" (default) or "en" first
	// Platform makes the account platform-wide (every structure): a
	// platform auditor or admin. Only platform admins may invite one.
	Platform bool
}

// Invite creates a pending account in structureID and emails the person a
// single-use, expiring enrolment link. Inviting again someone whose
// invitation is still pending sends a new link and cancels the older ones.
// The invitation is recorded (staff.invited) before anything changes; when
// the email cannot be sent the account stays pending and the error says so
// (invite again).
func (a *Admin) Invite(ctx context.Context, p Principal, structureID string, inv Invitation) (Staff, error) {
	if err := a.checkStructure(ctx, p, PermManageStaff, structureID); err != nil {
		return Staff{}, err
	}
	email, err := NormalizeEmail(inv.Email)
	if err != nil {
		return Staff{}, err
	}
	name := strings.Join(strings.Fields(inv.Name), " ")
	if name == "" || utf8.RuneCountInString(name) > 100 || !printable(name) {
		return Staff{}, ErrInvalidName
	}
	role, err := ParseRole(inv.Role)
	if err != nil {
		return Staff{}, err
	}
	if role == RoleAdmin && !p.Platform {
		return Staff{}, ErrRoleNotAllowed
	}
	if inv.Platform && (!Can(p, PermManageStructures, "") || role == RoleMediator) {
		return Staff{}, ErrRoleNotAllowed // platform-wide: auditors and admins, by platform admins
	}
	if a.cfg.Notifier == nil {
		return Staff{}, ErrNoNotifier
	}
	st, err := a.svc.Structure(ctx, structureID)
	if err != nil {
		return Staff{}, err
	}
	staff, again, err := a.pendingAccount(ctx, email, structureID)
	if err != nil {
		return Staff{}, err
	}
	if again {
		if err := mayManage(p, staff); err != nil {
			return Staff{}, err // a structure admin re-inviting a pending admin
		}
	}
	reason := "role=" + string(role)
	if inv.Platform {
		reason += "; platform-wide"
	}
	if again {
		reason += "; invited again, older links cancelled"
	}
	if err := a.svc.record(ctx, audit.Event{
		Actor: staffActor(p.ID, p.DisplayName), Structure: structureID, Target: StaffSubject(staff.ID),
		Action: audit.ActionStaffInvited, Outcome: audit.OutcomeSuccess, Reason: reason,
	}); err != nil {
		return Staff{}, err
	}
	if again {
		err = a.svc.store.UpdateStaff(ctx, staff.ID, func(s *Staff) error {
			if s.Status != StaffPending {
				return ErrEmailTaken
			}
			s.DisplayName, s.Role, s.Platform = name, role, inv.Platform
			staff = *s
			return nil
		})
		if errors.Is(err, ErrEmailTaken) {
			return Staff{}, err
		}
	} else {
		staff.DisplayName, staff.Role, staff.Platform = name, role, inv.Platform
		err = a.svc.store.CreateStaff(ctx, staff)
		if errors.Is(err, mandate.ErrAlreadyExists) {
			return Staff{}, ErrEmailTaken // created concurrently
		}
	}
	if err != nil {
		return Staff{}, fmt.Errorf("invite %s: %w", staff.ID, err)
	}
	token, err := a.svc.newEnrolment(ctx, staff.ID) // cancels the older links
	if err != nil {
		return Staff{}, err
	}
	msg := invitationMessage(inv.Language, name, p.DisplayName, st.Name, role,
		a.cfg.EnrolmentURL(token), a.svc.clock.Now().Add(a.svc.cfg.EnrolmentTTL))
	msg.To = email
	if err := a.cfg.Notifier.Send(ctx, msg); err != nil {
		return Staff{}, fmt.Errorf("send the invitation of %s: %w", staff.ID, err)
	}
	a.svc.log.InfoContext(ctx, "staff invited", "staff_id", staff.ID, "structure_id", structureID, "role", role, "again", again)
	return staff, nil
}

// pendingAccount returns the account to invite: a new one, or the pending
// account of this structure with that email (again = true).
func (a *Admin) pendingAccount(ctx context.Context, email, structureID string) (Staff, bool, error) {
	existing, err := a.svc.store.FindStaffByEmail(ctx, email)
	switch {
	case err == nil:
		if existing.StructureID != structureID || existing.Status != StaffPending {
			return Staff{}, false, ErrEmailTaken
		}
		return existing, true, nil
	case !errors.Is(err, mandate.ErrNotFound):
		return Staff{}, false, fmt.Errorf("find staff: %w", err)
	}
	return Staff{
		ID: uuid.NewString(), Email: email, StructureID: structureID,
		Status: StaffPending, CreatedAt: a.svc.clock.Now(),
	}, false, nil
}

// enrolmentCanceller is the part of AdminStore newEnrolment uses to make
// older links of an account stop working.
type enrolmentCanceller interface {
	CancelEnrolmentsOf(ctx context.Context, staffID string, except []byte, now time.Time) (int, error)
}

// cancelOlderEnrolments makes every other unused link of staffID stop
// working, so that only the newest link works. Stores that cannot (test
// doubles) keep the older links.
func (s *Service) cancelOlderEnrolments(ctx context.Context, staffID string, newest []byte, now time.Time) error {
	c, ok := s.store.(enrolmentCanceller)
	if !ok {
		return nil
	}
	n, err := c.CancelEnrolmentsOf(ctx, staffID, newest, now)
	if err != nil {
		return fmt.Errorf("cancel older enrolment links of %s: %w", staffID, err)
	}
	if n > 0 {
		s.log.InfoContext(ctx, "older enrolment links cancelled", "staff_id", staffID, "count", n)
	}
	return nil
}

var roleNames = map[Role][2]string{
	RoleAdmin:    {"administrateur ou administratrice de la structure", "organisation administrator"},
	RoleMediator: {"médiateur ou médiatrice numérique", "digital mediator"},
	RoleAuditor:  {"contrôleur ou contrôleuse du journal", "auditor"},
}

var monthsFR = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet",
	"août", "septembre", "octobre", "novembre", "décembre"}

// invitationMessage is the invitation email: French first, English second
// (English first when lang is "en").
func invitationMessage(lang, name, by, structure string, role Role, link string, expires time.Time) notify.Message {
	byFR, byEN := by, by
	if by == "" {
		byFR, byEN = "L'administration", "The administration"
	}
	exp := expires.UTC()
	fr := fmt.Sprintf("Bonjour %s,\n\n%s vous invite à rejoindre %s sur mandated, comme %s.\n\n"+
		"Pour créer votre accès, ouvrez ce lien. Il ne sert qu'une fois et ne fonctionne plus après le %d %s %d à %s (UTC) :\n\n%s\n\n"+
		"Vous choisirez votre mot de passe et installerez une application d'authentification sur votre téléphone.\n"+
		"Si vous n'attendiez pas ce message, ignorez-le : sans ce lien, aucun accès n'est créé.\n",
		name, byFR, structure, roleNames[role][0], exp.Day(), monthsFR[exp.Month()-1], exp.Year(), exp.Format("15:04"), link)
	en := fmt.Sprintf("Hello %s,\n\n%s invites you to join %s on mandated, as %s.\n\n"+
		"To set up your access, open this link. It works only once and stops working after %s at %s (UTC):\n\n%s\n\n"+
		"You will choose your password and set up an authenticator app on your phone.\n"+
		"If you did not expect this message, ignore it: without this link, no access is created.\n",
		name, byEN, structure, roleNames[role][1], exp.Format("2 January 2006"), exp.Format("15:04"), link)
	subject, text, language := "Votre accès à mandated · Your access to mandated", fr+"\n---\n\n"+en, "fr"
	if lang == "en" {
		subject, text, language = "Your access to mandated · Votre accès à mandated", en+"\n---\n\n"+fr, "en"
	}
	return notify.Message{Channel: notify.Email, Subject: subject, Text: text, Language: language}
}
