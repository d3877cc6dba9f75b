package store

import (
	"context"
	"errors"
	"time"

	"github.com/mandated/mandated/authz"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

type consentRow struct {
	Subject   string `gorm:"primaryKey"`
	ClientID  string `gorm:"primaryKey"`
	Scopes    strList
	GrantedAt time.Time
}

func (consentRow) TableName() string { return "consents" }

func (r consentRow) toConsent() authz.Consent {
	return authz.Consent{Subject: r.Subject, ClientID: r.ClientID, Scopes: r.Scopes, GrantedAt: r.GrantedAt.UTC()}
}

// SaveConsent creates or replaces the consent for (Subject, ClientID);
// mandate.ErrNotFound if the client does not exist.
func (s *Store) SaveConsent(ctx context.Context, c authz.Consent) error {
	granted := c.GrantedAt
	if granted.IsZero() {
		granted = s.now()
	}
	row := consentRow{Subject: c.Subject, ClientID: c.ClientID, Scopes: c.Scopes, GrantedAt: utc(granted)}
	err := s.w(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "subject"}, {Name: "client_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"scopes", "granted_at"}),
	}).Create(&row).Error
	return s.wrap(err, "save consent of %s to %s", c.Subject, c.ClientID)
}

// GetConsent returns mandate.ErrNotFound when there is none.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (authz.Consent, error) {
	var row consentRow
	err := s.r(ctx).Where("subject = ? AND client_id = ?", subject, clientID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return authz.Consent{}, notFound("consent of %s to %s", subject, clientID)
	}
	if err != nil {
		return authz.Consent{}, s.wrap(err, "load consent of %s to %s", subject, clientID)
	}
	return row.toConsent(), nil
}

// ListConsents returns a person's consents, newest first.
func (s *Store) ListConsents(ctx context.Context, subject string) ([]authz.Consent, error) {
	var rows []consentRow
	err := s.r(ctx).Where("subject = ?", subject).Order("granted_at DESC, client_id").Find(&rows).Error
	if err != nil {
		return nil, s.wrap(err, "list consents of %s", subject)
	}
	out := make([]authz.Consent, len(rows))
	for i, r := range rows {
		out[i] = r.toConsent()
	}
	return out, nil
}

// DeleteConsent withdraws a consent; mandate.ErrNotFound when there is none.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	res := s.w(ctx).Where("subject = ? AND client_id = ?", subject, clientID).Delete(&consentRow{})
	if res.Error != nil {
		return s.wrap(res.Error, "delete consent of %s to %s", subject, clientID)
	}
	if res.RowsAffected == 0 {
		return notFound("delete consent of %s to %s", subject, clientID)
	}
	return nil
}
