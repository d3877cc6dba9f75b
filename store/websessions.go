package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"gorm.io/gorm"
)

var _ people.AccountStore = (*Store)(nil)

type webSessionRow struct {
	IDHash     []byte `gorm:"primaryKey"`
	Subject    string
	CSRFToken  string    `gorm:"column:csrf_token"`
	CreatedAt  time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt  time.Time
	LastSeenAt *time.Time // NULL for sessions started before migration 00007
	IP         string     `gorm:"column:ip"`
	Browser    string
	OS         string `gorm:"column:os"`
}

func (webSessionRow) TableName() string { return "web_sessions" }

func (r webSessionRow) session() people.Session {
	last := r.CreatedAt.UTC()
	if r.LastSeenAt != nil {
		last = r.LastSeenAt.UTC()
	}
	return people.Session{
		IDHash: r.IDHash, Subject: r.Subject, CSRFToken: r.CSRFToken,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		LastSeenAt: last, IP: r.IP, Browser: r.Browser, OS: r.OS,
	}
}

// CreateSession stores a browser session; mandate.ErrAlreadyExists if its ID is taken.
func (s *Store) CreateSession(ctx context.Context, ses people.Session) error {
	created := ses.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	last := ses.LastSeenAt
	if last.IsZero() {
		last = created
	}
	last = utc(last)
	row := webSessionRow{
		IDHash: ses.IDHash, Subject: ses.Subject, CSRFToken: ses.CSRFToken,
		CreatedAt: utc(created), ExpiresAt: utc(ses.ExpiresAt),
		LastSeenAt: &last, IP: ses.IP, Browser: ses.Browser, OS: ses.OS,
	}
	return s.wrap(s.w(ctx).Create(&row).Error, "create session of %s", ses.Subject)
}

// GetSession returns mandate.ErrNotFound for unknown or expired (at now) sessions.
func (s *Store) GetSession(ctx context.Context, idHash []byte, now time.Time) (people.Session, error) {
	var row webSessionRow
	err := s.r(ctx).Where("id_hash = ? AND expires_at > ?", idHash, utc(now)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Session{}, notFound("session")
	}
	if err != nil {
		return people.Session{}, s.wrap(err, "load session")
	}
	return row.session(), nil
}

// ListSessionsOf returns subject's sessions not expired at now, newest first.
func (s *Store) ListSessionsOf(ctx context.Context, subject string, now time.Time) ([]people.Session, error) {
	var rows []webSessionRow
	err := s.r(ctx).Where("subject = ? AND expires_at > ?", subject, utc(now)).
		Order("created_at DESC").Order("id_hash").Find(&rows).Error
	if err != nil {
		return nil, s.wrap(err, "list sessions of %s", subject)
	}
	out := make([]people.Session, len(rows))
	for i, r := range rows {
		out[i] = r.session()
	}
	return out, nil
}

// TouchSession records that a session was used at `at`; it never moves the
// last-seen time backwards. mandate.ErrNotFound when the session is gone.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	at = utc(at)
	res := s.w(ctx).Model(&webSessionRow{}).
		Where("id_hash = ? AND (last_seen_at IS NULL OR last_seen_at < ?)", idHash, at).
		Update("last_seen_at", at)
	if res.Error != nil {
		return s.wrap(res.Error, "touch session")
	}
	if res.RowsAffected == 0 {
		var n int64
		if err := s.r(ctx).Model(&webSessionRow{}).Where("id_hash = ?", idHash).Count(&n).Error; err != nil {
			return s.wrap(err, "touch session")
		}
		if n == 0 {
			return notFound("touch session")
		}
	}
	return nil
}

// DeleteSession ends a session; mandate.ErrNotFound when there is none.
func (s *Store) DeleteSession(ctx context.Context, idHash []byte) error {
	res := s.w(ctx).Where("id_hash = ?", idHash).Delete(&webSessionRow{})
	if res.Error != nil {
		return s.wrap(res.Error, "delete session")
	}
	if res.RowsAffected == 0 {
		return notFound("delete session")
	}
	return nil
}

// DeleteSessionsOf ends every session of subject and returns how many.
func (s *Store) DeleteSessionsOf(ctx context.Context, subject string) (int, error) {
	res := s.w(ctx).Where("subject = ?", subject).Delete(&webSessionRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "delete sessions of %s", subject)
	}
	return int(res.RowsAffected), nil
}

// PruneSessions deletes browser sessions and password-reset links that
// expired before t, and returns how many rows went.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int, error) {
	before = utc(before)
	total := 0
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		for _, table := range []string{"web_sessions", "password_resets"} {
			res := tx.Exec("DELETE FROM "+table+" WHERE expires_at < ?", before)
			if res.Error != nil {
				return s.wrap(res.Error, "prune expired %s", table)
			}
			total += int(res.RowsAffected)
		}
		return nil
	})
	return total, err
}

type passwordResetRow struct {
	TokenHash []byte `gorm:"primaryKey"`
	StaffID   string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (passwordResetRow) TableName() string { return "password_resets" }

// CreatePasswordReset stores r and deletes every other unused reset link of
// its account, in one transaction; mandate.ErrNotFound if the account does
// not exist.
func (s *Store) CreatePasswordReset(ctx context.Context, r people.PasswordReset) error {
	created := r.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := passwordResetRow{
		TokenHash: r.TokenHash, StaffID: r.StaffID,
		CreatedAt: utc(created), ExpiresAt: utc(r.ExpiresAt), UsedAt: utcPtr(r.UsedAt),
	}
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("staff_id = ? AND used_at IS NULL", r.StaffID).Delete(&passwordResetRow{}).Error; err != nil {
			return s.wrap(err, "cancel older reset links of %s", r.StaffID)
		}
		return s.wrap(tx.Create(&row).Error, "create reset link of staff %s", r.StaffID)
	})
}

// GetPasswordReset finds a reset link by token hash, used or not.
func (s *Store) GetPasswordReset(ctx context.Context, tokenHash []byte) (people.PasswordReset, error) {
	var row passwordResetRow
	err := s.r(ctx).Where("token_hash = ?", tokenHash).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.PasswordReset{}, notFound("reset link")
	}
	if err != nil {
		return people.PasswordReset{}, s.wrap(err, "load reset link")
	}
	return people.PasswordReset{
		TokenHash: row.TokenHash, StaffID: row.StaffID,
		CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC(), UsedAt: utcPtr(row.UsedAt),
	}, nil
}

// CompletePasswordReset, in one transaction: claims the link if unused and
// not expired at now (mandate.ErrConflict otherwise, ErrNotFound when
// unknown), marks it used and applies fn to its account. The conditional
// UPDATE makes it single use even under concurrent attempts.
func (s *Store) CompletePasswordReset(ctx context.Context, tokenHash []byte, now time.Time, fn func(*people.Staff) error) error {
	now = utc(now)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&passwordResetRow{}).
			Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", tokenHash, now).
			Update("used_at", now)
		if res.Error != nil {
			return s.wrap(res.Error, "complete password reset")
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Model(&passwordResetRow{}).Where("token_hash = ?", tokenHash).Count(&n).Error; err != nil {
				return s.wrap(err, "check reset link")
			}
			if n == 0 {
				return notFound("reset link")
			}
			return fmt.Errorf("reset link used or expired: %w", mandate.ErrConflict)
		}
		var row passwordResetRow
		if err := tx.Where("token_hash = ?", tokenHash).Take(&row).Error; err != nil {
			return s.wrap(err, "complete password reset")
		}
		return s.updateStaff(tx, row.StaffID, fn)
	})
}

type signInFailureRow struct {
	ID         int64 `gorm:"primaryKey"`
	FailureKey string
	FailedAt   time.Time
}

func (signInFailureRow) TableName() string { return "sign_in_failures" }

// RecordSignInFailure counts one failure for key at `at` and returns the
// failures for key since windowStart, this one included.
func (s *Store) RecordSignInFailure(ctx context.Context, key string, at, windowStart time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		row := signInFailureRow{FailureKey: key, FailedAt: utc(at)}
		if err := tx.Omit("id").Create(&row).Error; err != nil {
			return s.wrap(err, "record sign-in failure")
		}
		return s.countFailures(tx, key, windowStart, &n)
	})
	return int(n), err
}

// CountSignInFailures returns failures for key since windowStart.
func (s *Store) CountSignInFailures(ctx context.Context, key string, windowStart time.Time) (int, error) {
	var n int64
	err := s.countFailures(s.r(ctx), key, windowStart, &n)
	return int(n), err
}

func (s *Store) countFailures(db *gorm.DB, key string, windowStart time.Time, n *int64) error {
	err := db.Model(&signInFailureRow{}).Where("failure_key = ? AND failed_at >= ?", key, utc(windowStart)).Count(n).Error
	return s.wrap(err, "count sign-in failures")
}

// ClearSignInFailures forgets key's failures.
func (s *Store) ClearSignInFailures(ctx context.Context, key string) error {
	err := s.w(ctx).Where("failure_key = ?", key).Delete(&signInFailureRow{}).Error
	return s.wrap(err, "clear sign-in failures")
}

// PruneSignInFailures deletes failures recorded before `before` and returns
// how many went.
func (s *Store) PruneSignInFailures(ctx context.Context, before time.Time) (int, error) {
	res := s.w(ctx).Where("failed_at < ?", utc(before)).Delete(&signInFailureRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "prune sign-in failures")
	}
	return int(res.RowsAffected), nil
}
