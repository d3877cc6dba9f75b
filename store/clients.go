package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mandated/mandated/authz"
	"github.com/ory/fosite"
	"gorm.io/gorm"
)

type clientRow struct {
	ID             string `gorm:"primaryKey"`
	Name           string
	SecretHash     []byte
	RedirectURIs   strList `gorm:"column:redirect_uris"`
	GrantTypes     strList
	ResponseTypes  strList
	Scopes         strList
	Audience       strList
	AuthMethod     string
	JWKSURI        string `gorm:"column:jwks_uri"`
	JWKS           []byte `gorm:"column:jwks"`
	AuthSigningAlg string
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
}

func (clientRow) TableName() string { return "clients" }

func (s *Store) clientToRow(c *authz.Client) clientRow {
	created := c.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	return clientRow{
		ID: c.ID, Name: c.Name, SecretHash: nilIfEmpty(c.SecretHash),
		RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, ResponseTypes: c.ResponseTypes,
		Scopes: c.Scopes, Audience: c.Audience, AuthMethod: c.AuthMethod,
		JWKSURI: c.JWKSURI, JWKS: nilIfEmpty(c.JWKS), AuthSigningAlg: c.AuthSigningAlg,
		CreatedAt: utc(created),
	}
}

func (r clientRow) toClient() (*authz.Client, error) {
	c := &authz.Client{
		ID: r.ID, Name: r.Name, SecretHash: r.SecretHash,
		RedirectURIs: r.RedirectURIs, GrantTypes: r.GrantTypes, ResponseTypes: r.ResponseTypes,
		Scopes: r.Scopes, Audience: r.Audience, AuthMethod: r.AuthMethod,
		JWKSURI: r.JWKSURI, AuthSigningAlg: r.AuthSigningAlg, CreatedAt: r.CreatedAt.UTC(),
	}
	if len(r.JWKS) > 0 {
		c.JWKS = json.RawMessage(r.JWKS)
	}
	if err := c.Prepare(); err != nil {
		return nil, err
	}
	return c, nil
}

// GetClient loads a client, ready for fosite; fosite.ErrNotFound if unknown.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.getClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Store) getClient(ctx context.Context, id string) (*authz.Client, error) {
	var row clientRow
	err := s.r(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("load client %s: %w", id, fosite.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(err, "load client %s", id)
	}
	c, err := row.toClient()
	if err != nil {
		return nil, fmt.Errorf("load client %s: %w", id, err)
	}
	return c, nil
}

// CreateClient stores a new client; mandate.ErrAlreadyExists if the ID is taken.
func (s *Store) CreateClient(ctx context.Context, c *authz.Client) error {
	row := s.clientToRow(c)
	return s.wrap(s.w(ctx).Create(&row).Error, "create client %s", c.ID)
}

// ListClients returns every client ordered by creation time.
func (s *Store) ListClients(ctx context.Context) ([]*authz.Client, error) {
	var rows []clientRow
	if err := s.r(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list clients")
	}
	out := make([]*authz.Client, 0, len(rows))
	for _, r := range rows {
		c, err := r.toClient()
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// DeleteClient removes a client; its tokens, codes, PKCE sessions and
// consents go with it (ON DELETE CASCADE).
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res := s.w(ctx).Where("id = ?", id).Delete(&clientRow{})
	if res.Error != nil {
		return s.wrap(res.Error, "delete client %s", id)
	}
	if res.RowsAffected == 0 {
		return notFound("delete client %s", id)
	}
	return nil
}
