package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
)

type codeRow struct {
	ID        string `gorm:"primaryKey"`
	HolderID  string
	Purpose   string
	CodeHash  []byte
	Channel   string
	Attempts  int
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
	UsedAt    *time.Time
	VoidedAt  *time.Time
}

func (codeRow) TableName() string { return "one_time_codes" }

func newCodeRow(c people.OneTimeCode) codeRow {
	return codeRow{
		ID: c.ID, HolderID: c.HolderID, Purpose: string(c.Purpose), CodeHash: c.Hash, Channel: string(c.Channel),
		Attempts: c.Attempts, CreatedAt: utc(c.CreatedAt), ExpiresAt: utc(c.ExpiresAt),
		UsedAt: utcPtr(c.UsedAt), VoidedAt: utcPtr(c.VoidedAt),
	}
}

func (r codeRow) toCode() people.OneTimeCode {
	return people.OneTimeCode{
		ID: r.ID, HolderID: r.HolderID, Purpose: people.CodePurpose(r.Purpose), Hash: r.CodeHash,
		Channel: notify.Channel(r.Channel), Attempts: r.Attempts, CreatedAt: r.CreatedAt.UTC(),
		ExpiresAt: r.ExpiresAt.UTC(), UsedAt: utcPtr(r.UsedAt), VoidedAt: utcPtr(r.VoidedAt),
	}
}

// codeRetention is how long a holder's codes are kept after they were
// created (the hourly send limit counts them); CreateCode deletes older ones.
const codeRetention = 24 * time.Hour

// CreateCode stores c, voids the holder's other live codes of the same
// purpose and deletes their codes older than a day, in one transaction.
// mandate.ErrNotFound when the holder does not exist.
func (s *Store) CreateCode(ctx context.Context, c people.OneTimeCode) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	row := newCodeRow(c)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		err := tx.Where("holder_id = ? AND created_at < ?", c.HolderID, utc(c.CreatedAt.Add(-codeRetention))).
			Delete(&codeRow{}).Error
		if err != nil {
			return s.wrap(err, "delete old codes of holder %s", c.HolderID)
		}
		err = tx.Model(&codeRow{}).
			Where("holder_id = ? AND purpose = ? AND used_at IS NULL AND voided_at IS NULL", c.HolderID, string(c.Purpose)).
			Update("voided_at", row.CreatedAt).Error
		if err != nil {
			return s.wrap(err, "void codes of holder %s", c.HolderID)
		}
		return s.wrap(tx.Create(&row).Error, "create code for holder %s", c.HolderID)
	})
}

// CountCodesSince counts the codes created for holderID since t.
func (s *Store) CountCodesSince(ctx context.Context, holderID string, since time.Time) (int, error) {
	var n int64
	err := s.r(ctx).Model(&codeRow{}).Where("holder_id = ? AND created_at >= ?", holderID, utc(since)).Count(&n).Error
	if err != nil {
		return 0, s.wrap(err, "count codes of holder %s", holderID)
	}
	return int(n), nil
}

// UpdateLiveCode changes the newest live code of holderID for purpose with
// fn, in one transaction; mandate.ErrNotFound when there is none.
func (s *Store) UpdateLiveCode(ctx context.Context, holderID string, purpose people.CodePurpose, now time.Time, fn func(*people.OneTimeCode) error) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		var row codeRow
		err := s.forUpdate(tx).
			Where("holder_id = ? AND purpose = ? AND used_at IS NULL AND voided_at IS NULL AND expires_at > ?",
				holderID, string(purpose), utc(now)).
			Order("created_at DESC").Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("live %s code of holder %s", purpose, holderID)
		}
		if err != nil {
			return s.wrap(err, "load code of holder %s", holderID)
		}
		c := row.toCode()
		if err := fn(&c); err != nil {
			return err
		}
		c.ID, c.HolderID, c.Purpose, c.Hash, c.CreatedAt = row.ID, row.HolderID, people.CodePurpose(row.Purpose), row.CodeHash, row.CreatedAt
		upd := newCodeRow(c)
		if err := tx.Model(&codeRow{ID: row.ID}).Select("*").Updates(&upd).Error; err != nil {
			return s.wrap(err, "update code %s", row.ID)
		}
		return nil
	})
}

// PruneCodes deletes every code created before t.
func (s *Store) PruneCodes(ctx context.Context, before time.Time) (int, error) {
	res := s.w(ctx).Where("created_at < ?", utc(before)).Delete(&codeRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "prune codes")
	}
	return int(res.RowsAffected), nil
}
