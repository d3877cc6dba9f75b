package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// usedJTIRow is a JWT ID already seen (client assertions and RFC 7523
// grants share the table), remembered until the JWT expires.
type usedJTIRow struct {
	JTI       string `gorm:"column:jti;primaryKey"`
	ExpiresAt time.Time
}

func (usedJTIRow) TableName() string { return "used_jtis" }

// ClientAssertionJWTValid returns fosite.ErrJTIKnown when jti was seen and
// has not expired yet.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var n int64
	err := s.r(ctx).Model(&usedJTIRow{}).Where("jti = ? AND expires_at > ?", jti, s.now()).Count(&n).Error
	if err != nil {
		return s.wrap(err, "check jti")
	}
	if n > 0 {
		return fmt.Errorf("check jti: %w", fosite.ErrJTIKnown)
	}
	return nil
}

// SetClientAssertionJWT remembers jti until exp, after forgetting expired
// ones; fosite.ErrJTIKnown if it is already remembered.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("expires_at < ?", s.now()).Delete(&usedJTIRow{}).Error; err != nil {
			return s.wrap(err, "forget expired jtis")
		}
		// ON CONFLICT DO NOTHING rather than a failing insert, which would
		// abort an enclosing PostgreSQL transaction.
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&usedJTIRow{JTI: jti, ExpiresAt: utc(exp)})
		if res.Error != nil {
			return s.wrap(res.Error, "remember jti")
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("remember jti: %w", fosite.ErrJTIKnown)
		}
		return nil
	})
}

// IsJWTUsed reports whether an RFC 7523 assertion's jti was seen and has not
// expired.
func (s *Store) IsJWTUsed(ctx context.Context, jti string) (bool, error) {
	err := s.ClientAssertionJWTValid(ctx, jti)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, fosite.ErrJTIKnown):
		return true, nil
	}
	return true, err
}

// MarkJWTUsedForTime remembers an RFC 7523 assertion's jti until exp.
func (s *Store) MarkJWTUsedForTime(ctx context.Context, jti string, exp time.Time) error {
	return s.SetClientAssertionJWT(ctx, jti, exp)
}
