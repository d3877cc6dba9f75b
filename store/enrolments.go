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

type enrolmentRow struct {
	TokenHash         []byte `gorm:"primaryKey"`
	StaffID           string
	SealedPendingTOTP []byte    `gorm:"column:sealed_pending_totp"`
	CreatedAt         time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt         time.Time
	UsedAt            *time.Time
}

func (enrolmentRow) TableName() string { return "enrolments" }

// CreateEnrolment stores an enrolment; mandate.ErrNotFound if its staff
// account does not exist.
func (s *Store) CreateEnrolment(ctx context.Context, e people.Enrolment) error {
	created := e.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := enrolmentRow{
		TokenHash: e.TokenHash, StaffID: e.StaffID, SealedPendingTOTP: nilIfEmpty(e.SealedPendingTOTP),
		CreatedAt: utc(created), ExpiresAt: utc(e.ExpiresAt), UsedAt: utcPtr(e.UsedAt),
	}
	return s.wrap(s.w(ctx).Create(&row).Error, "create enrolment of staff %s", e.StaffID)
}

// GetEnrolment finds an enrolment by token hash, used or not.
func (s *Store) GetEnrolment(ctx context.Context, tokenHash []byte) (people.Enrolment, error) {
	var row enrolmentRow
	err := s.r(ctx).Where("token_hash = ?", tokenHash).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Enrolment{}, notFound("enrolment")
	}
	if err != nil {
		return people.Enrolment{}, s.wrap(err, "load enrolment")
	}
	return people.Enrolment{
		TokenHash: row.TokenHash, StaffID: row.StaffID, SealedPendingTOTP: row.SealedPendingTOTP,
		CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC(), UsedAt: utcPtr(row.UsedAt),
	}, nil
}

// SetEnrolmentPendingTOTP stores a new SealedPendingTOTP for an unused
// enrolment; mandate.ErrConflict if it was used.
func (s *Store) SetEnrolmentPendingTOTP(ctx context.Context, tokenHash []byte, sealed []byte) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&enrolmentRow{}).Where("token_hash = ? AND used_at IS NULL", tokenHash).
			Update("sealed_pending_totp", sealed)
		if res.Error != nil {
			return s.wrap(res.Error, "set enrolment totp")
		}
		if res.RowsAffected == 0 {
			return s.enrolmentUnusable(tx, tokenHash)
		}
		return nil
	})
}

// CompleteEnrolment, in one transaction: claims the enrolment if unused and
// not expired at now (mandate.ErrConflict otherwise), marks it used, and
// applies fn to its staff account. The conditional UPDATE makes it single use
// even under concurrent attempts.
func (s *Store) CompleteEnrolment(ctx context.Context, tokenHash []byte, now time.Time, fn func(*people.Staff) error) error {
	now = utc(now)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&enrolmentRow{}).
			Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", tokenHash, now).
			Update("used_at", now)
		if res.Error != nil {
			return s.wrap(res.Error, "complete enrolment")
		}
		if res.RowsAffected == 0 {
			return s.enrolmentUnusable(tx, tokenHash)
		}
		var row enrolmentRow
		if err := tx.Where("token_hash = ?", tokenHash).Take(&row).Error; err != nil {
			return s.wrap(err, "complete enrolment")
		}
		return s.updateStaff(tx, row.StaffID, fn)
	})
}

// enrolmentUnusable says why an enrolment could not be claimed.
func (s *Store) enrolmentUnusable(tx *gorm.DB, tokenHash []byte) error {
	var n int64
	if err := tx.Model(&enrolmentRow{}).Where("token_hash = ?", tokenHash).Count(&n).Error; err != nil {
		return s.wrap(err, "check enrolment")
	}
	if n == 0 {
		return notFound("enrolment")
	}
	return fmt.Errorf("enrolment used or expired: %w", mandate.ErrConflict)
}
