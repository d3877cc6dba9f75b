package store

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// RevokeGrantsOf makes every access token, refresh token and unused
// authorization code issued to clientID for subject inactive, and returns the
// request IDs it touched, sorted.
func (s *Store) RevokeGrantsOf(ctx context.Context, subject, clientID string) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		for _, table := range []string{tableCodes, tableAccess, tableRefresh} {
			var touched []string
			// UPDATE … RETURNING (PostgreSQL, SQLite ≥ 3.35) names exactly the
			// rows this statement changed.
			err := tx.Raw("UPDATE "+table+" SET active = ? WHERE client_id = ? AND subject = ? AND active = ? RETURNING request_id",
				false, clientID, subject, true).Scan(&touched).Error
			if err != nil {
				return s.wrap(err, "revoke %s of %s for %s", table, clientID, subject)
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

// DeleteExpired removes token records, codes, PKCE sessions and used JWT IDs
// that expired before t, and returns how many rows went.
func (s *Store) DeleteExpired(ctx context.Context, t time.Time) (int, error) {
	t = utc(t)
	total := 0
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		for _, table := range []string{tableCodes, tablePKCE, tableAccess, tableRefresh, "used_jtis"} {
			res := tx.Exec("DELETE FROM "+table+" WHERE expires_at < ?", t)
			if res.Error != nil {
				return s.wrap(res.Error, "delete expired %s", table)
			}
			total += int(res.RowsAffected)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}
