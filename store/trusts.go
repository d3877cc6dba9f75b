package store

import (
	"context"
	"fmt"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/mandated/mandated/authz"
	"github.com/ory/fosite"
)

type trustRow struct {
	ID              string `gorm:"primaryKey"`
	Issuer          string
	Subject         string
	AllowAnySubject bool
	KeyID           string
	PublicJWK       []byte `gorm:"column:public_jwk"`
	Scopes          strList
	ExpiresAt       time.Time
	CreatedAt       time.Time `gorm:"autoCreateTime:false"`
}

func (trustRow) TableName() string { return "rfc7523_trusts" }

func (r trustRow) toTrust() authz.Trust {
	return authz.Trust{
		ID: r.ID, Issuer: r.Issuer, Subject: r.Subject, AllowAnySubject: r.AllowAnySubject,
		KeyID: r.KeyID, PublicJWK: r.PublicJWK, Scopes: r.Scopes,
		ExpiresAt: r.ExpiresAt.UTC(), CreatedAt: r.CreatedAt.UTC(),
	}
}

// CreateTrust stores t; mandate.ErrAlreadyExists for the same (Issuer, Subject, KeyID).
func (s *Store) CreateTrust(ctx context.Context, t authz.Trust) error {
	created := t.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := trustRow{
		ID: t.ID, Issuer: t.Issuer, Subject: t.Subject, AllowAnySubject: t.AllowAnySubject,
		KeyID: t.KeyID, PublicJWK: t.PublicJWK, Scopes: t.Scopes,
		ExpiresAt: utc(t.ExpiresAt), CreatedAt: utc(created),
	}
	return s.wrap(s.w(ctx).Create(&row).Error, "create trust %s", t.ID)
}

// ListTrusts returns every trust, oldest first.
func (s *Store) ListTrusts(ctx context.Context) ([]authz.Trust, error) {
	var rows []trustRow
	if err := s.r(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list trusts")
	}
	out := make([]authz.Trust, len(rows))
	for i, r := range rows {
		out[i] = r.toTrust()
	}
	return out, nil
}

// DeleteTrust removes a trust; mandate.ErrNotFound when there is none.
func (s *Store) DeleteTrust(ctx context.Context, id string) error {
	res := s.w(ctx).Where("id = ?", id).Delete(&trustRow{})
	if res.Error != nil {
		return s.wrap(res.Error, "delete trust %s", id)
	}
	if res.RowsAffected == 0 {
		return notFound("delete trust %s", id)
	}
	return nil
}

// trustsFor returns the unexpired trusts of issuer covering subject (named,
// or any subject), those naming the subject first.
func (s *Store) trustsFor(ctx context.Context, issuer, subject, keyID string) ([]trustRow, error) {
	q := s.r(ctx).Where("issuer = ? AND (subject = ? OR allow_any_subject = ?) AND expires_at > ?",
		issuer, subject, true, s.now())
	if keyID != "" {
		q = q.Where("key_id = ?", keyID)
	}
	var rows []trustRow
	if err := q.Order("allow_any_subject, created_at, id").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "load trusts of %s", issuer)
	}
	return rows, nil
}

func (r trustRow) key() (josev3.JSONWebKey, error) {
	var k josev3.JSONWebKey
	if err := k.UnmarshalJSON(r.PublicJWK); err != nil {
		return k, fmt.Errorf("trust %s: parse jwk: %w", r.ID, err)
	}
	if !k.IsPublic() {
		return k, fmt.Errorf("trust %s: jwk is not a public key", r.ID)
	}
	if k.KeyID == "" {
		k.KeyID = r.KeyID
	}
	return k, nil
}

// GetPublicKey returns the key keyID that issuer may sign assertions about
// subject with; fosite.ErrNotFound if no unexpired trust says so.
func (s *Store) GetPublicKey(ctx context.Context, issuer, subject, keyID string) (*josev3.JSONWebKey, error) {
	rows, err := s.trustsFor(ctx, issuer, subject, keyID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || keyID == "" {
		return nil, fmt.Errorf("trusted key %s of %s: %w", keyID, issuer, fosite.ErrNotFound)
	}
	k, err := rows[0].key()
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// GetPublicKeys returns every key issuer may sign assertions about subject
// with; fosite.ErrNotFound if none.
func (s *Store) GetPublicKeys(ctx context.Context, issuer, subject string) (*josev3.JSONWebKeySet, error) {
	rows, err := s.trustsFor(ctx, issuer, subject, "")
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("trusted keys of %s: %w", issuer, fosite.ErrNotFound)
	}
	set := &josev3.JSONWebKeySet{}
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.KeyID] {
			continue
		}
		seen[r.KeyID] = true
		k, err := r.key()
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// GetPublicKeyScopes returns the scopes an assertion signed with keyID may
// obtain; fosite.ErrNotFound if no unexpired trust covers it.
func (s *Store) GetPublicKeyScopes(ctx context.Context, issuer, subject, keyID string) ([]string, error) {
	rows, err := s.trustsFor(ctx, issuer, subject, keyID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || keyID == "" {
		return nil, fmt.Errorf("trusted key %s of %s: %w", keyID, issuer, fosite.ErrNotFound)
	}
	return rows[0].Scopes, nil
}
