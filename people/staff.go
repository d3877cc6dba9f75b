package people

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/google/uuid"

	"github.com/mandated/mandated/mandate"
)

// PlatformStructure is the structure platform-wide staff belong to.
const PlatformStructure = "Plateforme"

// NormalizeEmail trims and lower-cases an email address and checks that it
// is a bare address (no display name), at most 254 characters.
func NormalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || len(email) > 254 {
		return "", ErrInvalidEmail
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") {
		return "", ErrInvalidEmail
	}
	return email, nil
}

// ParseRole checks a role name.
func ParseRole(role string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(role))); r {
	case RoleAdmin, RoleMediator, RoleAuditor:
		return r, nil
	}
	return "", ErrInvalidRole
}

// CreateStaff creates a pending staff account and its first enrolment link,
// and returns the link's token (shown once; only its hash is kept). The
// structure is created if it does not exist. Without a structure name the
// account is platform-wide and belongs to the "Plateforme" structure.
func (s *Service) CreateStaff(ctx context.Context, email, role, structureName string, platform bool) (Staff, string, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Staff{}, "", err
	}
	r, err := ParseRole(role)
	if err != nil {
		return Staff{}, "", err
	}
	structureName = strings.TrimSpace(structureName)
	if structureName == "" {
		structureName, platform = PlatformStructure, true
	}
	st, err := s.ensureStructure(ctx, structureName)
	if err != nil {
		return Staff{}, "", err
	}
	staff := Staff{
		ID:          uuid.NewString(),
		Email:       email,
		Role:        r,
		StructureID: st.ID,
		Platform:    platform,
		Status:      StaffPending,
		CreatedAt:   s.clock.Now(),
	}
	if err := s.store.CreateStaff(ctx, staff); err != nil {
		return Staff{}, "", fmt.Errorf("create staff %s: %w", email, err)
	}
	token, err := s.newEnrolment(ctx, staff.ID)
	if err != nil {
		return Staff{}, "", err
	}
	s.log.InfoContext(ctx, "staff account created", "staff_id", staff.ID, "role", r, "structure_id", st.ID, "platform", platform)
	return staff, token, nil
}

func (s *Service) ensureStructure(ctx context.Context, name string) (Structure, error) {
	st, err := s.store.FindStructureByName(ctx, name)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, mandate.ErrNotFound) {
		return Structure{}, fmt.Errorf("find structure %q: %w", name, err)
	}
	st = Structure{ID: uuid.NewString(), Name: name, CreatedAt: s.clock.Now()}
	if err := s.store.CreateStructure(ctx, st); err != nil {
		if errors.Is(err, mandate.ErrAlreadyExists) { // created concurrently
			return s.store.FindStructureByName(ctx, name)
		}
		return Structure{}, fmt.Errorf("create structure %q: %w", name, err)
	}
	return st, nil
}

// HasStaff reports whether any staff account exists.
func (s *Service) HasStaff(ctx context.Context) (bool, error) {
	n, err := s.store.CountStaff(ctx)
	if err != nil {
		return false, fmt.Errorf("count staff: %w", err)
	}
	return n > 0, nil
}

// BootstrapPlatformAdmin creates the first platform admin when there is no
// staff at all, and returns the enrolment token. ErrAlreadyBootstrapped otherwise.
func (s *Service) BootstrapPlatformAdmin(ctx context.Context, email string) (Staff, string, error) {
	has, err := s.HasStaff(ctx)
	if err != nil {
		return Staff{}, "", err
	}
	if has {
		return Staff{}, "", ErrAlreadyBootstrapped
	}
	return s.CreateStaff(ctx, email, string(RoleAdmin), "", true)
}
