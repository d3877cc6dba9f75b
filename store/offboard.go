package store

import (
	"context"
	"database/sql"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/mandated/mandated/people"
)

// RevokeSubjectGrants makes every access token, refresh token and unused
// authorization code whose subject is subject inactive, whatever the
// client, and returns the request IDs it touched, sorted (so caches can be
// told).
func (s *Store) RevokeSubjectGrants(ctx context.Context, subject string) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		for _, table := range []string{tableCodes, tableAccess, tableRefresh} {
			var touched []string
			err := tx.Raw("UPDATE "+table+" SET active = ? WHERE subject = ? AND active = ? RETURNING request_id",
				false, subject, true).Scan(&touched).Error
			if err != nil {
				return s.wrap(err, "revoke %s of %s", table, subject)
			}
			ids = append(ids, touched...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// DeleteConsentsOf forgets every consent subject gave; returns how many.
func (s *Store) DeleteConsentsOf(ctx context.Context, subject string) (int, error) {
	res := s.w(ctx).Where("subject = ?", subject).Delete(&consentRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "delete consents of %s", subject)
	}
	return int(res.RowsAffected), nil
}

// CancelEnrolmentsOf makes every unused, unexpired enrolment link of
// staffID expire at now, except the one whose hash is except; returns how
// many.
func (s *Store) CancelEnrolmentsOf(ctx context.Context, staffID string, except []byte, now time.Time) (int, error) {
	now = utc(now)
	q := s.w(ctx).Model(&enrolmentRow{}).Where("staff_id = ? AND used_at IS NULL AND expires_at > ?", staffID, now)
	if len(except) > 0 {
		q = q.Where("token_hash <> ?", except)
	}
	res := q.Update("expires_at", now)
	if res.Error != nil {
		return 0, s.wrap(res.Error, "cancel enrolment links of %s", staffID)
	}
	return int(res.RowsAffected), nil
}

// LastInvitations returns, for every pending account of structureID, when
// its newest enrolment link was made.
func (s *Store) LastInvitations(ctx context.Context, structureID string) (map[string]time.Time, error) {
	var rows []enrolmentRow
	err := s.r(ctx).Select("enrolments.staff_id", "enrolments.created_at").
		Joins("JOIN staff ON staff.id = enrolments.staff_id").
		Where("staff.structure_id = ? AND staff.status = ?", structureID, string(people.StaffPending)).
		Find(&rows).Error
	if err != nil {
		return nil, s.wrap(err, "last invitations of %s", structureID)
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		if t := r.CreatedAt.UTC(); t.After(out[r.StaffID]) {
			out[r.StaffID] = t
		}
	}
	return out, nil
}

// ListStructures returns every structure, by name.
func (s *Store) ListStructures(ctx context.Context) ([]people.Structure, error) {
	var rows []structureRow
	if err := s.r(ctx).Order("name").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list structures")
	}
	out := make([]people.Structure, len(rows))
	for i, r := range rows {
		out[i] = r.toStructure()
	}
	return out, nil
}

// ListStaffOverview returns what the administration pages show of a
// structure's staff, oldest first: no password hash, no second-factor
// secret. It scans rows directly (no reflection): the admin home lists
// hundreds of accounts on every view.
func (s *Store) ListStaffOverview(ctx context.Context, structureID string) ([]people.Staff, error) {
	rows, err := s.r(ctx).Raw(`SELECT id, email, display_name, role, platform, status, created_at, last_sign_in_at
FROM staff WHERE structure_id = ? ORDER BY created_at, id`, structureID).Rows()
	if err != nil {
		return nil, s.wrap(err, "list staff of structure %q", structureID)
	}
	defer rows.Close()
	var out []people.Staff
	for rows.Next() {
		var (
			st          people.Staff
			role, state string
			last        sql.NullTime
		)
		if err := rows.Scan(&st.ID, &st.Email, &st.DisplayName, &role, &st.Platform, &state, &st.CreatedAt, &last); err != nil {
			return nil, s.wrap(err, "list staff of structure %q", structureID)
		}
		st.Role, st.Status, st.StructureID = people.Role(role), people.StaffStatus(state), structureID
		st.CreatedAt = st.CreatedAt.UTC()
		if last.Valid {
			t := last.Time.UTC()
			st.LastSignInAt = &t
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "list staff of structure %q", structureID)
	}
	return out, nil
}
