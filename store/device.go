package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/mandated/mandated/authz"
)

// slowDownStep is what RFC 8628 §3.5 adds to the polling interval on each
// slow_down.
const slowDownStep = 5 * time.Second

type deviceAuthorizationRow struct {
	DeviceCodeSignature string `gorm:"primaryKey"`
	UserCodeSignature   string
	MandateID           string
	ClientID            string
	Scopes              spaceList
	RequestedAt         time.Time
	ExpiresAt           time.Time
	IntervalNS          int64 `gorm:"column:interval_ns"`
	LastPolledAt        *time.Time
}

func (deviceAuthorizationRow) TableName() string { return "device_authorizations" }

func (r deviceAuthorizationRow) toDeviceAuthorization() authz.DeviceAuthorization {
	return authz.DeviceAuthorization{
		DeviceCodeSignature: r.DeviceCodeSignature, UserCodeSignature: r.UserCodeSignature,
		MandateID: r.MandateID, ClientID: r.ClientID, Scopes: []string(r.Scopes),
		RequestedAt: r.RequestedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		Interval: time.Duration(r.IntervalNS), LastPolledAt: timeOf(r.LastPolledAt),
	}
}

// CreateDeviceAuthorization stores d (RequestedAt defaults to now).
// mandate.ErrAlreadyExists when either code signature is taken;
// mandate.ErrNotFound when its mandate or client does not exist.
func (s *Store) CreateDeviceAuthorization(ctx context.Context, d authz.DeviceAuthorization) error {
	if d.DeviceCodeSignature == "" || d.UserCodeSignature == "" {
		return errors.New("create device authorization: both code signatures are required")
	}
	if d.RequestedAt.IsZero() {
		d.RequestedAt = s.now()
	}
	row := deviceAuthorizationRow{
		DeviceCodeSignature: d.DeviceCodeSignature, UserCodeSignature: d.UserCodeSignature,
		MandateID: d.MandateID, ClientID: d.ClientID, Scopes: spaceList(d.Scopes),
		RequestedAt: utc(d.RequestedAt), ExpiresAt: utc(d.ExpiresAt),
		IntervalNS: int64(d.Interval), LastPolledAt: timePtr(d.LastPolledAt),
	}
	return s.wrap(s.w(ctx).Create(&row).Error, "create device authorization of mandate %s", d.MandateID)
}

// DeviceAuthorizationByUserCode finds an authorization by its user-code
// signature, expired or not; mandate.ErrNotFound when none.
func (s *Store) DeviceAuthorizationByUserCode(ctx context.Context, userCodeSignature string) (authz.DeviceAuthorization, error) {
	return s.findDeviceAuthorization(s.r(ctx), "user_code_signature = ?", userCodeSignature)
}

func (s *Store) findDeviceAuthorization(db *gorm.DB, cond, arg string) (authz.DeviceAuthorization, error) {
	var row deviceAuthorizationRow
	err := db.Where(cond, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return authz.DeviceAuthorization{}, notFound("device authorization")
	}
	if err != nil {
		return authz.DeviceAuthorization{}, s.wrap(err, "load device authorization")
	}
	return row.toDeviceAuthorization(), nil
}

// PollDeviceAuthorization records one poll at now in one transaction (the
// row locked on PostgreSQL; SQLite's single writer excludes every other
// write): it returns the authorization as it was before, and tooFast when
// the previous poll was less than Interval − authz.PollLeeway before now, in which case the
// stored Interval grows by 5 s. LastPolledAt becomes now either way.
func (s *Store) PollDeviceAuthorization(ctx context.Context, deviceCodeSignature string, now time.Time) (authz.DeviceAuthorization, bool, error) {
	now = utc(now)
	var (
		d       authz.DeviceAuthorization
		tooFast bool
	)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var err error
		d, err = s.findDeviceAuthorization(s.forUpdate(tx), "device_code_signature = ?", deviceCodeSignature)
		if err != nil {
			return fmt.Errorf("poll device authorization: %w", err)
		}
		tooFast = !d.LastPolledAt.IsZero() && now.Sub(d.LastPolledAt) < d.Interval-authz.PollLeeway
		set := map[string]any{"last_polled_at": now}
		if tooFast {
			set["interval_ns"] = int64(d.Interval + slowDownStep)
		}
		err = tx.Model(&deviceAuthorizationRow{}).Where("device_code_signature = ?", deviceCodeSignature).Updates(set).Error
		return s.wrap(err, "poll device authorization")
	})
	if err != nil {
		return authz.DeviceAuthorization{}, false, err
	}
	return d, tooFast, nil
}

// DeleteDeviceAuthorization removes one; no error when already gone.
func (s *Store) DeleteDeviceAuthorization(ctx context.Context, deviceCodeSignature string) error {
	err := s.w(ctx).Where("device_code_signature = ?", deviceCodeSignature).Delete(&deviceAuthorizationRow{}).Error
	return s.wrap(err, "delete device authorization")
}

// PruneDeviceAuthorizations deletes those that expired before `before`.
func (s *Store) PruneDeviceAuthorizations(ctx context.Context, before time.Time) (int, error) {
	res := s.w(ctx).Where("expires_at < ?", utc(before)).Delete(&deviceAuthorizationRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "prune device authorizations")
	}
	return int(res.RowsAffected), nil
}
