package store

import (
	"context"
	"errors"
	"time"

	"github.com/mandated/mandated/people"
	"gorm.io/gorm"
)

type webSessionRow struct {
	IDHash    []byte `gorm:"primaryKey"`
	Subject   string
	CSRFToken string    `gorm:"column:csrf_token"`
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
}

func (webSessionRow) TableName() string { return "web_sessions" }

// CreateSession stores a browser session; mandate.ErrAlreadyExists if its ID is taken.
func (s *Store) CreateSession(ctx context.Context, ses people.Session) error {
	created := ses.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := webSessionRow{
		IDHash: ses.IDHash, Subject: ses.Subject, CSRFToken: ses.CSRFToken,
		CreatedAt: utc(created), ExpiresAt: utc(ses.ExpiresAt),
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
	return people.Session{
		IDHash: row.IDHash, Subject: row.Subject, CSRFToken: row.CSRFToken,
		CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC(),
	}, nil
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
