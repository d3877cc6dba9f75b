package authz

import (
	"context"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/audit"
)

// ErrSubjectRefused is what a subject check returns (wrapped) when the
// subject may not receive tokens: a deactivated or unknown staff member, an
// unknown holder. The token endpoint answers invalid_grant (RFC 6749 §5.2,
// RFC 7523 §3.1). Any other error from the check answers server_error.
var ErrSubjectRefused = errors.New("authz: the subject may not receive tokens")

// SubjectCheck tells whether tokens may still be issued for subject: nil
// when they may, an error wrapping ErrSubjectRefused when they may not.
type SubjectCheck func(ctx context.Context, subject string) error

// WithSubjectCheck sets the check consulted by every grant that issues a
// token for a subject — the RFC 7523 JWT bearer grant, the authorization
// code at the token endpoint, and every refresh — after fosite validated
// the request and before any token is made or any refresh token rotated
// (fosite's PKCE step has consumed a code's challenge by then: a refused
// code stays unusable). Without it every subject passes (tests about other things);
// the binary wires people's (cmd/mandated/app.go).
func WithSubjectCheck(check SubjectCheck) Option {
	return func(o *options) { o.subjectCheck = check }
}

// checkSubject runs the subject check on a validated token request. A
// refusal is recorded (the request carried a real credential: a code, a
// refresh token or a trusted assertion) and returned as invalid_grant.
func (s *Server) checkSubject(ctx context.Context, rw http.ResponseWriter, ar fosite.AccessRequester) error {
	if s.subjectCheck == nil || ar == nil || ar.GetSession() == nil {
		return nil
	}
	subject := ar.GetSession().GetSubject()
	if subject == "" {
		return nil // client credentials: the client is the subject
	}
	err := s.subjectCheck(ctx, subject)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrSubjectRefused) {
		return fosite.ErrServerError.WithHint("The subject could not be checked.").WithWrap(err).WithDebug(err.Error())
	}
	clientID := ar.GetClient().GetID()
	actor, ok := subjectActor(subject)
	if !ok {
		actor = audit.Actor{Kind: audit.ActorClient, ID: clientID}
	}
	if _, rerr := s.rec.Record(ctx, audit.Event{
		Actor: actor, ClientID: clientID, Action: audit.ActionRequestRefused, Outcome: audit.OutcomeDenied,
		Reason: "invalid_grant: the subject is deactivated or unknown (" + grantReason(ar.GetGrantTypes(), nil) + ")", RequestID: requestID(rw),
	}); rerr != nil {
		// Refused whatever happens; a lost record of a refusal is logged.
		s.log.ErrorContext(ctx, "record refused token request", "client_id", clientID, "err", rerr)
	}
	return fosite.ErrInvalidGrant.WithHint("The account this grant is for is deactivated or unknown.").WithWrap(err)
}
