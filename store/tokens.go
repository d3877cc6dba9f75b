package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"
	"gorm.io/gorm"
)

// createRequest stores req under signature in table.
func (s *Store) createRequest(ctx context.Context, table, signature string, req fosite.Requester, tt fosite.TokenType) error {
	row, err := newRequestRow(signature, req, tt)
	if err != nil {
		return fmt.Errorf("store %s: %w", table, err)
	}
	return s.wrap(s.w(ctx).Table(table).Create(&row).Error, "store %s of request %s", table, req.GetID())
}

// getRequest loads the row under signature and rebuilds its request; the
// row comes back too so callers can look at its active flag.
func (s *Store) getRequest(ctx context.Context, table, signature string, session fosite.Session) (*fosite.Request, requestRow, error) {
	var row requestRow
	err := s.r(ctx).Table(table).Where("signature = ?", signature).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, row, fmt.Errorf("load %s: %w", table, fosite.ErrNotFound)
	}
	if err != nil {
		return nil, row, s.wrap(err, "load %s", table)
	}
	req, err := s.toRequest(ctx, row, session)
	if err != nil {
		return nil, row, fmt.Errorf("load %s: %w", table, err)
	}
	return req, row, nil
}

func (s *Store) deleteRequest(ctx context.Context, table, signature string) error {
	err := s.w(ctx).Table(table).Where("signature = ?", signature).Delete(&requestRow{}).Error
	return s.wrap(err, "delete %s", table)
}

// CreateAuthorizeCodeSession stores an authorization request under its code's signature.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createRequest(ctx, tableCodes, signature, req, fosite.AuthorizeCode)
}

// GetAuthorizeCodeSession returns the authorization request; for a used
// code it returns the request and fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, row, err := s.getRequest(ctx, tableCodes, signature, session)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fmt.Errorf("load authorization code: %w", fosite.ErrInvalidatedAuthorizeCode)
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used. Only one caller can do
// so: a code already used gives fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	res := s.w(ctx).Table(tableCodes).Where("signature = ? AND active = ?", signature, true).Update("active", false)
	if res.Error != nil {
		return s.wrap(res.Error, "invalidate authorization code")
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return s.whyNotActive(s.w(ctx), tableCodes, signature, fosite.ErrInvalidatedAuthorizeCode)
}

// whyNotActive explains why a conditional update on an active row matched
// nothing: fosite.ErrNotFound, or inactive when the row exists.
func (s *Store) whyNotActive(db *gorm.DB, table, signature string, inactive error) error {
	var n int64
	if err := db.Table(table).Where("signature = ?", signature).Count(&n).Error; err != nil {
		return s.wrap(err, "check %s", table)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", table, fosite.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", table, inactive)
}

// CreatePKCERequestSession stores the PKCE part of an authorization request.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createRequest(ctx, tablePKCE, signature, req, fosite.AuthorizeCode)
}

// GetPKCERequestSession returns the stored PKCE request; fosite.ErrNotFound if none.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getRequest(ctx, tablePKCE, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession forgets a PKCE request (no error if already gone).
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, tablePKCE, signature)
}

// CreateAccessTokenSession stores the request an access token was issued for.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createRequest(ctx, tableAccess, signature, req, fosite.AccessToken)
}

// GetAccessTokenSession returns the access token's request; for a revoked
// grant (see RevokeGrantsOf) the request and fosite.ErrInactiveToken.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, row, err := s.getRequest(ctx, tableAccess, signature, session)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fmt.Errorf("load access token: %w", fosite.ErrInactiveToken)
	}
	return req, nil
}

// DeleteAccessTokenSession forgets an access token (no error if already gone).
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, tableAccess, signature)
}

// CreateRefreshTokenSession stores the request a refresh token was issued for.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	row, err := newRequestRow(signature, req, fosite.RefreshToken)
	if err != nil {
		return fmt.Errorf("store refresh token: %w", err)
	}
	rr := refreshRow{Request: row, AccessTokenSignature: accessSignature}
	return s.wrap(s.w(ctx).Table(tableRefresh).Create(&rr).Error, "store refresh token of request %s", req.GetID())
}

// GetRefreshTokenSession returns the refresh token's request; for a used or
// revoked token the request and fosite.ErrInactiveToken (fosite then
// revokes the whole grant: reuse detection).
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, row, err := s.getRequest(ctx, tableRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fmt.Errorf("load refresh token: %w", fosite.ErrInactiveToken)
	}
	return req, nil
}

// DeleteRefreshTokenSession forgets a refresh token (no error if already gone).
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, tableRefresh, signature)
}

// RotateRefreshToken retires the refresh token being used and the rest of
// its grant's refresh tokens, and deletes the grant's access tokens. The
// presented token is claimed with a conditional UPDATE, which row-locks it on
// PostgreSQL: of two concurrent refreshes with the same token, the second
// finds it inactive and gets fosite.ErrInactiveToken.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Table(tableRefresh).Where("signature = ? AND active = ?", signature, true).Update("active", false)
		if res.Error != nil {
			return s.wrap(res.Error, "rotate refresh token")
		}
		if res.RowsAffected == 0 {
			return s.whyNotActive(tx, tableRefresh, signature, fosite.ErrInactiveToken)
		}
		if err := s.revokeRefresh(tx, requestID); err != nil {
			return err
		}
		return s.deleteAccess(tx, requestID)
	})
}

// RevokeRefreshToken makes every refresh token of the grant inactive.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revokeRefresh(s.w(ctx), requestID)
}

// RevokeAccessToken deletes every access token of the grant.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.deleteAccess(s.w(ctx), requestID)
}

func (s *Store) revokeRefresh(db *gorm.DB, requestID string) error {
	err := db.Table(tableRefresh).Where("request_id = ? AND active = ?", requestID, true).Update("active", false).Error
	return s.wrap(err, "revoke refresh tokens of request %s", requestID)
}

func (s *Store) deleteAccess(db *gorm.DB, requestID string) error {
	err := db.Table(tableAccess).Where("request_id = ?", requestID).Delete(&requestRow{}).Error
	return s.wrap(err, "revoke access tokens of request %s", requestID)
}
