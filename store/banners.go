package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/mandated/mandated/people"
)

var _ people.AdminStore = (*Store)(nil)

type bannerRow struct {
	ID          string `gorm:"primaryKey"`
	StructureID string
	Audience    string
	TextFR      string `gorm:"column:text_fr"`
	TextEN      string `gorm:"column:text_en"`
	StartsAt    time.Time
	EndsAt      time.Time
	CreatedBy   string
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
}

func (bannerRow) TableName() string { return "banners" }

func newBannerRow(b people.Banner) bannerRow {
	return bannerRow{
		ID: b.ID, StructureID: b.StructureID, Audience: string(b.Audience), TextFR: b.TextFR, TextEN: b.TextEN,
		StartsAt: utc(b.StartsAt), EndsAt: utc(b.EndsAt), CreatedBy: b.CreatedBy, CreatedAt: utc(b.CreatedAt),
	}
}

func (r bannerRow) toBanner() people.Banner {
	return people.Banner{
		ID: r.ID, StructureID: r.StructureID, Audience: people.Audience(r.Audience), TextFR: r.TextFR, TextEN: r.TextEN,
		StartsAt: r.StartsAt.UTC(), EndsAt: r.EndsAt.UTC(), CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(),
	}
}

// CreateBanner stores a banner; mandate.ErrAlreadyExists if the ID is taken.
func (s *Store) CreateBanner(ctx context.Context, b people.Banner) error {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = s.now()
	}
	row := newBannerRow(b)
	return s.wrap(s.w(ctx).Create(&row).Error, "create banner %s", b.ID)
}

// GetBanner returns mandate.ErrNotFound when there is none.
func (s *Store) GetBanner(ctx context.Context, id string) (people.Banner, error) {
	var row bannerRow
	err := s.r(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Banner{}, notFound("banner %s", id)
	}
	if err != nil {
		return people.Banner{}, s.wrap(err, "load banner %s", id)
	}
	return row.toBanner(), nil
}

// UpdateBanner replaces a banner's audience, texts and dates;
// mandate.ErrNotFound when there is none.
func (s *Store) UpdateBanner(ctx context.Context, b people.Banner) error {
	res := s.w(ctx).Model(&bannerRow{}).Where("id = ?", b.ID).Updates(map[string]any{
		"audience": string(b.Audience), "text_fr": b.TextFR, "text_en": b.TextEN,
		"starts_at": utc(b.StartsAt), "ends_at": utc(b.EndsAt),
	})
	if res.Error != nil {
		return s.wrap(res.Error, "update banner %s", b.ID)
	}
	if res.RowsAffected == 0 {
		return notFound("banner %s", b.ID)
	}
	return nil
}

// DeleteBanner removes a banner; mandate.ErrNotFound when there is none.
func (s *Store) DeleteBanner(ctx context.Context, id string) error {
	res := s.w(ctx).Where("id = ?", id).Delete(&bannerRow{})
	if res.Error != nil {
		return s.wrap(res.Error, "delete banner %s", id)
	}
	if res.RowsAffected == 0 {
		return notFound("banner %s", id)
	}
	return nil
}

// ListBanners returns a structure's banners ("" for the platform-wide
// ones), newest start first.
func (s *Store) ListBanners(ctx context.Context, structureID string) ([]people.Banner, error) {
	var rows []bannerRow
	err := s.r(ctx).Where("structure_id = ?", structureID).Order("starts_at DESC, id").Find(&rows).Error
	if err != nil {
		return nil, s.wrap(err, "list banners of %q", structureID)
	}
	return toBanners(rows), nil
}

// CurrentBanners returns the banners for audience shown at now on the pages
// of structureIDs, platform-wide ones included, oldest start first.
func (s *Store) CurrentBanners(ctx context.Context, audience people.Audience, structureIDs []string, now time.Time) ([]people.Banner, error) {
	now = utc(now)
	scopes := append([]string{people.PlatformWide}, structureIDs...)
	var rows []bannerRow
	err := s.r(ctx).
		Where("audience = ? AND ends_at > ? AND starts_at <= ? AND structure_id IN ?", string(audience), now, now, scopes).
		Order("starts_at, id").Limit(50).Find(&rows).Error
	if err != nil {
		return nil, s.wrap(err, "current banners")
	}
	return toBanners(rows), nil
}

func toBanners(rows []bannerRow) []people.Banner {
	out := make([]people.Banner, len(rows))
	for i, r := range rows {
		out[i] = r.toBanner()
	}
	return out
}
