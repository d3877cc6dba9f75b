package store

import (
	"context"
	"time"

	"github.com/mandated/mandated/authz"
	"gorm.io/gorm"
)

type signingKeyRow struct {
	KID           string `gorm:"column:kid;primaryKey"`
	Algorithm     string
	PublicJWK     []byte `gorm:"column:public_jwk"`
	SealedPrivate []byte
	CreatedAt     time.Time `gorm:"autoCreateTime:false"`
	RetiredAt     *time.Time
}

func (signingKeyRow) TableName() string { return "signing_keys" }

// CreateSigningKey stores k and, in the same transaction, retires every key
// not yet retired (RetiredAt = k.CreatedAt).
func (s *Store) CreateSigningKey(ctx context.Context, k authz.SigningKey) error {
	created := k.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	created = utc(created)
	row := signingKeyRow{
		KID: k.KID, Algorithm: k.Algorithm, PublicJWK: k.PublicJWK, SealedPrivate: k.SealedPrivate,
		CreatedAt: created, RetiredAt: utcPtr(k.RetiredAt),
	}
	return s.inTx(ctx, func(tx *gorm.DB) error {
		err := tx.Model(&signingKeyRow{}).Where("retired_at IS NULL").Update("retired_at", created).Error
		if err != nil {
			return s.wrap(err, "retire signing keys")
		}
		return s.wrap(tx.Create(&row).Error, "create signing key %s", k.KID)
	})
}

// ListSigningKeys returns all keys, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]authz.SigningKey, error) {
	var rows []signingKeyRow
	if err := s.r(ctx).Order("created_at DESC, kid DESC").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list signing keys")
	}
	out := make([]authz.SigningKey, len(rows))
	for i, r := range rows {
		out[i] = authz.SigningKey{
			KID: r.KID, Algorithm: r.Algorithm, PublicJWK: r.PublicJWK, SealedPrivate: r.SealedPrivate,
			CreatedAt: r.CreatedAt.UTC(), RetiredAt: utcPtr(r.RetiredAt),
		}
	}
	return out, nil
}

// DeleteSigningKeysRetiredBefore removes keys retired before t.
func (s *Store) DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) (int, error) {
	res := s.w(ctx).Where("retired_at IS NOT NULL AND retired_at < ?", utc(t)).Delete(&signingKeyRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "delete retired signing keys")
	}
	return int(res.RowsAffected), nil
}
