package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
)

// Token tables: one row per token signature, all with the same columns
// (refresh tokens add access_token_signature).
const (
	tableCodes   = "authorization_codes"
	tablePKCE    = "pkce_sessions"
	tableAccess  = "access_tokens"
	tableRefresh = "refresh_tokens"
)

// secretFormKeys never reach the database: they are credentials or the
// tokens themselves.
var secretFormKeys = []string{
	"client_secret", "client_assertion", "code", "code_verifier",
	"refresh_token", "password", "assertion", "token",
}

// requestRow is a stored fosite request.
type requestRow struct {
	Signature         string `gorm:"primaryKey"`
	RequestID         string
	RequestedAt       time.Time
	ClientID          string
	Subject           string
	Scopes            strList
	GrantedScopes     strList
	RequestedAudience strList
	GrantedAudience   strList
	Form              string
	Session           string
	Active            bool
	ExpiresAt         *time.Time
}

type refreshRow struct {
	Request              requestRow `gorm:"embedded"`
	AccessTokenSignature string
}

func newRequestRow(signature string, req fosite.Requester, tokenType fosite.TokenType) (requestRow, error) {
	form := url.Values{}
	for k, v := range req.GetRequestForm() {
		form[k] = append([]string(nil), v...)
	}
	for _, k := range secretFormKeys {
		form.Del(k)
	}
	row := requestRow{
		Signature:         signature,
		RequestID:         req.GetID(),
		RequestedAt:       utc(req.GetRequestedAt()),
		Scopes:            strList(req.GetRequestedScopes()),
		GrantedScopes:     strList(req.GetGrantedScopes()),
		RequestedAudience: strList(req.GetRequestedAudience()),
		GrantedAudience:   strList(req.GetGrantedAudience()),
		Form:              form.Encode(),
		Active:            true,
	}
	if c := req.GetClient(); c != nil {
		row.ClientID = c.GetID()
	}
	sess := req.GetSession()
	if sess != nil {
		row.Subject = sess.GetSubject()
		if exp := sess.GetExpiresAt(tokenType); !exp.IsZero() {
			e := utc(exp)
			row.ExpiresAt = &e
		}
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return requestRow{}, fmt.Errorf("encode session: %w", err)
	}
	row.Session = string(b)
	return row, nil
}

// toRequest rebuilds the fosite request: the session JSON is decoded into
// session (a fresh *fosite.DefaultSession when nil) and the client is loaded.
func (s *Store) toRequest(ctx context.Context, row requestRow, session fosite.Session) (*fosite.Request, error) {
	if session == nil {
		session = &fosite.DefaultSession{}
	}
	if err := json.Unmarshal([]byte(row.Session), session); err != nil {
		return nil, fmt.Errorf("decode session of request %s: %w", row.RequestID, err)
	}
	client, err := s.getClient(ctx, row.ClientID)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", row.RequestID, err)
	}
	form, err := url.ParseQuery(row.Form)
	if err != nil {
		return nil, fmt.Errorf("decode form of request %s: %w", row.RequestID, err)
	}
	return &fosite.Request{
		ID:                row.RequestID,
		RequestedAt:       row.RequestedAt.UTC(),
		Client:            client,
		RequestedScope:    fosite.Arguments(row.Scopes),
		GrantedScope:      fosite.Arguments(row.GrantedScopes),
		RequestedAudience: fosite.Arguments(row.RequestedAudience),
		GrantedAudience:   fosite.Arguments(row.GrantedAudience),
		Form:              form,
		Session:           session,
	}, nil
}
