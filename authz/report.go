package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// Errors of resource-server reporting (POST /api/audit/actions). The HTTP
// layer maps them: ErrReporterToken → 401 invalid_token, ErrReporterScope →
// 403 insufficient_scope (RFC 6750 §3.1), ErrPresentedToken → 422,
// ErrReportUnavailable → 503.
var (
	// ErrReporterToken: the bearer token is not an active access token.
	ErrReporterToken = errors.New("the bearer token is not an active access token")
	// ErrReporterScope: the bearer token is active but was not issued to a
	// resource server by client_credentials with scope audit.write.
	ErrReporterScope = errors.New("the bearer token was not granted audit.write by client_credentials")
	// ErrPresentedToken: the reported token is not an active access token
	// this resource server may see (unknown, expired, revoked, a refresh
	// token, or one issued to another client whose aud does not name the
	// reporter). The cases are not told apart, as introspection answers
	// {"active": false} to all of them (RFC 7662 §4).
	ErrPresentedToken = errors.New("the presented token is not active for this resource server")
	// ErrReportUnavailable: the token could not be checked (storage failed).
	ErrReportUnavailable = errors.New("the token could not be checked")
)

// ReportingClient is a resource server authenticated by its bearer token.
type ReportingClient struct {
	ID string // its client id
}

// ReportedToken is what the audit event of a reported action takes from the
// access token the resource server received: who acted, for whom, under
// which mandate, through which client. Nothing of it comes from the report.
type ReportedToken struct {
	ClientID  string      // client_id: the application the token was issued to
	Subject   string      // sub
	Actor     audit.Actor // act.sub when present (RFC 8693), else sub, else the client
	Holder    string      // the holder acted for, when sub or the actor names one
	MandateID string      // the mandate_id claim, or authorization_details[].mandate_id
	Scopes    []string
}

// ReportingClient authenticates a resource server by its bearer access
// token: active, and issued by client_credentials (sub is the client) with
// scope audit.write. Lookups go through introspection's token cache.
func (s *Server) ReportingClient(ctx context.Context, bearer string) (ReportingClient, error) {
	if bearer == "" {
		return ReportingClient{}, ErrReporterToken
	}
	d, _, err := s.lookupAccess(ctx, bearer)
	if err != nil {
		if errors.Is(err, ErrReportUnavailable) {
			return ReportingClient{}, err
		}
		return ReportingClient{}, ErrReporterToken
	}
	if !hasScope(d.Scope, mandate.ScopeAuditWrite) || d.Subject != d.ClientID {
		return ReportingClient{}, ErrReporterScope
	}
	return ReportingClient{ID: d.ClientID}, nil
}

// TokenForReporting checks the reporter's bearer token (as ReportingClient)
// and then the token it presents: an active access token the reporter may
// see under the introspection visibility policy (mayIntrospect: issued to
// the reporter, or with an aud naming it). It returns the presented token's
// claims for the audit event.
func (s *Server) TokenForReporting(ctx context.Context, reporterToken, presentedToken string) (ReportingClient, ReportedToken, error) {
	rc, err := s.ReportingClient(ctx, reporterToken)
	if err != nil {
		return ReportingClient{}, ReportedToken{}, err
	}
	if presentedToken == "" {
		return rc, ReportedToken{}, ErrPresentedToken
	}
	d, _, err := s.lookupAccess(ctx, presentedToken)
	if err != nil {
		if errors.Is(err, ErrReportUnavailable) {
			return rc, ReportedToken{}, err
		}
		return rc, ReportedToken{}, ErrPresentedToken
	}
	if !mayIntrospect(rc.ID, d) {
		return rc, ReportedToken{}, ErrPresentedToken
	}
	extra, err := reportClaims(presentedToken)
	if err != nil {
		return rc, ReportedToken{}, fmt.Errorf("%w: %v", ErrPresentedToken, err)
	}
	t := ReportedToken{
		ClientID: d.ClientID, Subject: d.Subject, MandateID: extra.mandateID,
		Scopes: fosite.RemoveEmpty(strings.Split(d.Scope, " ")),
	}
	t.Actor, t.Holder = reportActor(d.Subject, extra.actor, d.ClientID)
	return rc, t, nil
}

// lookupAccess introspects token as an access token through fosite and our
// introspector (its cache, its storage fallback) and describes it.
func (s *Server) lookupAccess(ctx context.Context, token string) (introspectionResponse, fosite.AccessRequester, error) {
	use, ar, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, &fosite.DefaultSession{})
	if err != nil {
		if errors.Is(err, fosite.ErrServerError) {
			s.log.ErrorContext(ctx, "reporting: token lookup", "err", err)
			return introspectionResponse{}, nil, fmt.Errorf("%w: %v", ErrReportUnavailable, err)
		}
		return introspectionResponse{}, nil, err
	}
	if use != fosite.AccessToken {
		return introspectionResponse{}, nil, errors.New("not an access token")
	}
	return s.describe(use, ar), ar, nil
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Split(scope, " ") {
		if s == want {
			return true
		}
	}
	return false
}

// reportActor: with an act claim, the actor is act.sub acting for sub (a
// holder when sub is "holder:<id>"); without one, the actor is sub — a
// person for "staff:<id>" or "holder:<id>" (a holder then acts for
// themselves), else the client the token was issued to.
func reportActor(sub, actSub, clientID string) (audit.Actor, string) {
	holder := ""
	if kind, id, ok := strings.Cut(sub, ":"); ok && kind == "holder" && id != "" {
		holder = id
	}
	who := sub
	if actSub != "" {
		who = actSub
	}
	if a, ok := subjectActor(who); ok {
		return a, holder
	}
	if actSub != "" {
		return audit.Actor{Kind: audit.ActorClient, ID: actSub}, holder
	}
	return audit.Actor{Kind: audit.ActorClient, ID: clientID}, holder
}

type extraClaims struct {
	actor     string
	mandateID string
}

// reportClaims reads the claims introspection does not keep: act.sub (RFC
// 8693 §4.1) and the mandate, from a token introspection has just verified
// (signature, or byte-for-byte equality with the verified cached one), so
// its payload is trusted as is.
func reportClaims(token string) (extraClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return extraClaims{}, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return extraClaims{}, fmt.Errorf("payload: %w", err)
	}
	var c struct {
		Act *struct {
			Sub string `json:"sub"`
		} `json:"act"`
		MandateID            string `json:"mandate_id"`
		AuthorizationDetails []struct {
			MandateID string `json:"mandate_id"`
		} `json:"authorization_details"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return extraClaims{}, fmt.Errorf("claims: %w", err)
	}
	var out extraClaims
	if c.Act != nil {
		if c.Act.Sub == "" {
			return extraClaims{}, errors.New("act claim without sub")
		}
		out.actor = c.Act.Sub
	}
	out.mandateID = c.MandateID
	for _, d := range c.AuthorizationDetails {
		if out.mandateID == "" && d.MandateID != "" {
			out.mandateID = d.MandateID
		}
	}
	return out, nil
}
