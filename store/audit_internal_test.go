package store

import "context"

// ExecAuditSQL runs raw SQL on s's writer, as someone at the database would.
// Only tests see it.
func ExecAuditSQL(ctx context.Context, s *Store, sql string) error {
	return s.db.WithContext(ctx).Exec(sql).Error
}
