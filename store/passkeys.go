package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

type passkeyRow struct {
	CredentialID      []byte `gorm:"primaryKey"`
	Owner             string
	UserHandle        []byte
	PublicKey         []byte
	AttestationFormat string
	AAGUID            []byte `gorm:"column:aaguid"`
	SignCount         int64
	Transports        strList
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	Name              string
	CreatedAt         time.Time `gorm:"autoCreateTime:false"`
	LastUsedAt        *time.Time
}

func (passkeyRow) TableName() string { return "passkeys" }

func (r passkeyRow) toPasskey() people.Passkey {
	return people.Passkey{
		CredentialID: r.CredentialID, Owner: r.Owner, UserHandle: r.UserHandle, PublicKey: r.PublicKey,
		AttestationFormat: r.AttestationFormat, AAGUID: r.AAGUID, SignCount: uint32(r.SignCount),
		Transports: []string(r.Transports), UserVerified: r.UserVerified,
		BackupEligible: r.BackupEligible, BackupState: r.BackupState, Name: r.Name,
		CreatedAt: r.CreatedAt.UTC(), LastUsedAt: utcPtr(r.LastUsedAt),
	}
}

// CreatePasskey stores a passkey; mandate.ErrAlreadyExists if its credential
// id is registered already.
func (s *Store) CreatePasskey(ctx context.Context, p people.Passkey) error {
	return s.createPasskey(s.w(ctx), p)
}

func (s *Store) createPasskey(db *gorm.DB, p people.Passkey) error {
	if len(p.CredentialID) == 0 || p.Owner == "" {
		return errors.New("create passkey: credential id and owner are required")
	}
	created := p.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := passkeyRow{
		CredentialID: p.CredentialID, Owner: p.Owner, UserHandle: p.UserHandle, PublicKey: p.PublicKey,
		AttestationFormat: p.AttestationFormat, AAGUID: nilIfEmpty(p.AAGUID), SignCount: int64(p.SignCount),
		Transports: strList(p.Transports), UserVerified: p.UserVerified,
		BackupEligible: p.BackupEligible, BackupState: p.BackupState, Name: p.Name,
		CreatedAt: utc(created), LastUsedAt: utcPtr(p.LastUsedAt),
	}
	return s.wrap(db.Create(&row).Error, "create passkey of %s", p.Owner)
}

// GetPasskey returns mandate.ErrNotFound when there is none.
func (s *Store) GetPasskey(ctx context.Context, credentialID []byte) (people.Passkey, error) {
	var row passkeyRow
	err := s.r(ctx).Where("credential_id = ?", credentialID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Passkey{}, notFound("passkey")
	}
	if err != nil {
		return people.Passkey{}, s.wrap(err, "load passkey")
	}
	return row.toPasskey(), nil
}

// ListPasskeys returns owner's passkeys, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, owner string) ([]people.Passkey, error) {
	var rows []passkeyRow
	if err := s.r(ctx).Where("owner = ?", owner).Order("created_at, credential_id").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list passkeys of %s", owner)
	}
	out := make([]people.Passkey, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.toPasskey())
	}
	return out, nil
}

// RecordPasskeyUse stores a successful use if the sign count is still
// prevCount; mandate.ErrConflict otherwise, mandate.ErrNotFound when the
// passkey is gone.
func (s *Store) RecordPasskeyUse(ctx context.Context, credentialID []byte, prevCount, newCount uint32, backupState bool, at time.Time) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&passkeyRow{}).Where("credential_id = ? AND sign_count = ?", credentialID, int64(prevCount)).
			Updates(map[string]any{"sign_count": int64(newCount), "backup_state": backupState, "last_used_at": utc(at)})
		if res.Error != nil {
			return s.wrap(res.Error, "record passkey use")
		}
		if res.RowsAffected == 1 {
			return nil
		}
		var n int64
		if err := tx.Model(&passkeyRow{}).Where("credential_id = ?", credentialID).Count(&n).Error; err != nil {
			return s.wrap(err, "record passkey use")
		}
		if n == 0 {
			return notFound("passkey")
		}
		return fmt.Errorf("passkey sign count changed: %w", mandate.ErrConflict)
	})
}

// DeletePasskey removes owner's passkey; mandate.ErrNotFound when owner has
// no such passkey.
func (s *Store) DeletePasskey(ctx context.Context, owner string, credentialID []byte) error {
	res := s.w(ctx).Where("credential_id = ? AND owner = ?", credentialID, owner).Delete(&passkeyRow{})
	if res.Error != nil {
		return s.wrap(res.Error, "delete passkey")
	}
	if res.RowsAffected == 0 {
		return notFound("passkey of %s", owner)
	}
	return nil
}

type passkeyCeremonyRow struct {
	IDHash    []byte `gorm:"primaryKey"`
	Owner     string
	Purpose   string
	Data      []byte
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (passkeyCeremonyRow) TableName() string { return "passkey_ceremonies" }

func (r passkeyCeremonyRow) toCeremony() people.PasskeyCeremony {
	return people.PasskeyCeremony{
		IDHash: r.IDHash, Owner: r.Owner, Purpose: r.Purpose, Data: r.Data,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), UsedAt: utcPtr(r.UsedAt),
	}
}

// CreatePasskeyCeremony stores a begun ceremony.
func (s *Store) CreatePasskeyCeremony(ctx context.Context, c people.PasskeyCeremony) error {
	created := c.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := passkeyCeremonyRow{
		IDHash: c.IDHash, Owner: c.Owner, Purpose: c.Purpose, Data: c.Data,
		CreatedAt: utc(created), ExpiresAt: utc(c.ExpiresAt), UsedAt: utcPtr(c.UsedAt),
	}
	return s.wrap(s.w(ctx).Create(&row).Error, "create passkey ceremony")
}

// TakePasskeyCeremony claims an unused ceremony not expired at now: the
// conditional UPDATE makes it single use even under concurrent attempts.
// mandate.ErrNotFound for an unknown one; mandate.ErrConflict, with the
// ceremony, for a used or expired one.
func (s *Store) TakePasskeyCeremony(ctx context.Context, idHash []byte, now time.Time) (people.PasskeyCeremony, error) {
	now = utc(now)
	var row passkeyCeremonyRow
	taken := false
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&passkeyCeremonyRow{}).
			Where("id_hash = ? AND used_at IS NULL AND expires_at > ?", idHash, now).
			Update("used_at", now)
		if res.Error != nil {
			return s.wrap(res.Error, "take passkey ceremony")
		}
		taken = res.RowsAffected == 1
		err := tx.Where("id_hash = ?", idHash).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("passkey ceremony")
		}
		return s.wrap(err, "take passkey ceremony")
	})
	if err != nil {
		return people.PasskeyCeremony{}, err
	}
	if !taken {
		return row.toCeremony(), fmt.Errorf("passkey ceremony used or expired: %w", mandate.ErrConflict)
	}
	return row.toCeremony(), nil
}

// PrunePasskeyCeremonies deletes ceremonies that expired before `before`.
func (s *Store) PrunePasskeyCeremonies(ctx context.Context, before time.Time) (int, error) {
	res := s.w(ctx).Where("expires_at < ?", utc(before)).Delete(&passkeyCeremonyRow{})
	if res.Error != nil {
		return 0, s.wrap(res.Error, "prune passkey ceremonies")
	}
	return int(res.RowsAffected), nil
}

type passkeyEnrolmentRow struct {
	TokenHash   []byte `gorm:"primaryKey"`
	HolderID    string
	StructureID string
	StartedBy   string
	DeviceHash  []byte
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt   time.Time
	VerifiedAt  *time.Time
	UsedAt      *time.Time
}

func (passkeyEnrolmentRow) TableName() string { return "passkey_enrolments" }

// CreatePasskeyEnrolment stores a holder's enrolment link.
func (s *Store) CreatePasskeyEnrolment(ctx context.Context, e people.PasskeyEnrolment) error {
	created := e.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := passkeyEnrolmentRow{
		TokenHash: e.TokenHash, HolderID: e.HolderID, StructureID: e.StructureID, StartedBy: e.StartedBy,
		DeviceHash: nilIfEmpty(e.DeviceHash), CreatedAt: utc(created), ExpiresAt: utc(e.ExpiresAt),
		VerifiedAt: utcPtr(e.VerifiedAt), UsedAt: utcPtr(e.UsedAt),
	}
	return s.wrap(s.w(ctx).Create(&row).Error, "create passkey enrolment of holder %s", e.HolderID)
}

// GetPasskeyEnrolment finds an enrolment link by token hash, used or not.
func (s *Store) GetPasskeyEnrolment(ctx context.Context, tokenHash []byte) (people.PasskeyEnrolment, error) {
	var row passkeyEnrolmentRow
	err := s.r(ctx).Where("token_hash = ?", tokenHash).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.PasskeyEnrolment{}, notFound("passkey enrolment")
	}
	if err != nil {
		return people.PasskeyEnrolment{}, s.wrap(err, "load passkey enrolment")
	}
	return people.PasskeyEnrolment{
		TokenHash: row.TokenHash, HolderID: row.HolderID, StructureID: row.StructureID, StartedBy: row.StartedBy,
		DeviceHash: row.DeviceHash, CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC(),
		VerifiedAt: utcPtr(row.VerifiedAt), UsedAt: utcPtr(row.UsedAt),
	}, nil
}

// VerifyPasskeyEnrolment records the device that typed the code on an
// unused link not expired at now; mandate.ErrConflict otherwise.
func (s *Store) VerifyPasskeyEnrolment(ctx context.Context, tokenHash, deviceHash []byte, now time.Time) error {
	now = utc(now)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&passkeyEnrolmentRow{}).
			Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", tokenHash, now).
			Updates(map[string]any{"device_hash": deviceHash, "verified_at": now})
		if res.Error != nil {
			return s.wrap(res.Error, "verify passkey enrolment")
		}
		if res.RowsAffected == 0 {
			return s.passkeyEnrolmentUnusable(tx, tokenHash)
		}
		return nil
	})
}

// CompletePasskeyEnrolment claims a link verified for deviceHash, unused and
// not expired at now (mandate.ErrConflict otherwise), and stores p, in one
// transaction.
func (s *Store) CompletePasskeyEnrolment(ctx context.Context, tokenHash, deviceHash []byte, now time.Time, p people.Passkey) error {
	now = utc(now)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&passkeyEnrolmentRow{}).
			Where("token_hash = ? AND device_hash = ? AND verified_at IS NOT NULL AND used_at IS NULL AND expires_at > ?",
				tokenHash, deviceHash, now).
			Update("used_at", now)
		if res.Error != nil {
			return s.wrap(res.Error, "complete passkey enrolment")
		}
		if res.RowsAffected == 0 {
			return s.passkeyEnrolmentUnusable(tx, tokenHash)
		}
		return s.createPasskey(tx, p)
	})
}

func (s *Store) passkeyEnrolmentUnusable(tx *gorm.DB, tokenHash []byte) error {
	var n int64
	if err := tx.Model(&passkeyEnrolmentRow{}).Where("token_hash = ?", tokenHash).Count(&n).Error; err != nil {
		return s.wrap(err, "check passkey enrolment")
	}
	if n == 0 {
		return notFound("passkey enrolment")
	}
	return fmt.Errorf("passkey enrolment used, expired or not verified on this device: %w", mandate.ErrConflict)
}
