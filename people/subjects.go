package people

import (
	"context"
	"errors"
	"fmt"

	"github.com/mandated/mandated/mandate"
)

// ErrSubjectInactive: tokens may not be issued for this subject — a staff
// account that is deactivated, not yet enrolled or unknown, or an unknown
// holder.
var ErrSubjectInactive = errors.New("this account is deactivated or unknown")

// CheckSubject tells whether the authorization server may still issue tokens
// naming subject: an active staff member ("staff:<id>") or an existing holder
// ("holder:<id>") may; any other staff or holder subject gets an error
// wrapping ErrSubjectInactive. Subjects that name no person (client ids,
// service subjects of an RFC 7523 trust) are not people's to judge and pass.
// Store failures are returned wrapped, not as ErrSubjectInactive.
func (s *Service) CheckSubject(ctx context.Context, subject string) error {
	kind, id, _ := ParseSubject(subject)
	switch kind {
	case "staff":
		if id == "" {
			return fmt.Errorf("subject %q: %w", subject, ErrSubjectInactive)
		}
		staff, err := s.store.GetStaff(ctx, id)
		if errors.Is(err, mandate.ErrNotFound) {
			return fmt.Errorf("staff %s: %w", id, ErrSubjectInactive)
		}
		if err != nil {
			return fmt.Errorf("check staff %s: %w", id, err)
		}
		if staff.Status != StaffActive {
			return fmt.Errorf("staff %s is %s: %w", id, staff.Status, ErrSubjectInactive)
		}
		return nil
	case "holder":
		if id == "" || s.cfg.Holders == nil {
			return fmt.Errorf("subject %q: %w", subject, ErrSubjectInactive)
		}
		_, err := s.cfg.Holders.GetHolder(ctx, id)
		if errors.Is(err, mandate.ErrNotFound) {
			return fmt.Errorf("holder %s: %w", id, ErrSubjectInactive)
		}
		if err != nil {
			return fmt.Errorf("check holder %s: %w", id, err)
		}
		return nil
	}
	return nil
}
