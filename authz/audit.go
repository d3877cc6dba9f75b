package authz

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/audit"
)

// Recorder records security events; *audit.Log satisfies it. Record returns
// once the event is durable; an error means it was not recorded and the
// action it describes must not happen (no action without its record).
// Never call it while holding a store transaction.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (int64, error)
}

// NopRecorder records nothing. The binary always wires the audit log
// (cmd/mandated); NopRecorder is the default of New and NewKeyManager only so
// that tests about other things need not run a log.
type NopRecorder struct{}

// Record does nothing.
func (NopRecorder) Record(context.Context, audit.Event) (int64, error) { return 0, nil }

// WithRecorder sets where security events are recorded (NopRecorder by default).
func WithRecorder(r Recorder) Option { return func(o *options) { o.recorder = r } }

// operator is the actor of administration done with the mandated CLI: the
// person at the console is not identified by the server.
var operator = audit.Actor{Kind: audit.ActorSystem, ID: "operator", Name: "mandated CLI"}

// subjectActor is the audit actor of an OAuth2 subject: a person for
// "staff:<id>" and "holder:<id>", else nil (the subject is not named, since
// a target or id that is not a person's would be stored in clear).
func subjectActor(subject string) (audit.Actor, bool) {
	kind, id, ok := strings.Cut(subject, ":")
	if !ok || id == "" {
		return audit.Actor{}, false
	}
	switch kind {
	case "staff":
		return audit.Actor{Kind: audit.ActorStaff, ID: id}, true
	case "holder":
		return audit.Actor{Kind: audit.ActorHolder, ID: id}, true
	}
	return audit.Actor{}, false
}

// requestID is echo's request id (set on the response before the handler
// runs), or "" when absent or not fit for the log.
func requestID(rw http.ResponseWriter) string {
	if rw == nil {
		return ""
	}
	id := rw.Header().Get("X-Request-Id")
	if len(id) > 128 {
		return ""
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return ""
		}
	}
	return id
}

// clientHolder carries the client authenticated during a request out of
// fosite (which does not return it from NewRevocationRequest).
type clientHolder struct{ id string }

type clientHolderKey struct{}

func withClientHolder(ctx context.Context) (context.Context, *clientHolder) {
	h := &clientHolder{}
	return context.WithValue(ctx, clientHolderKey{}, h), h
}

func noteClient(ctx context.Context, id string) {
	if h, ok := ctx.Value(clientHolderKey{}).(*clientHolder); ok {
		h.id = id
	}
}

// recordIssued records the tokens of ar before they are written: who they
// were issued to (the person for a code or a refresh, else the client), the
// grant type and the granted scopes. No token value is recorded.
func (s *Server) recordIssued(ctx context.Context, rw http.ResponseWriter, ar fosite.AccessRequester) error {
	clientID := ar.GetClient().GetID()
	action := audit.ActionTokenIssued
	if ar.GetGrantTypes().ExactOne(GrantRefreshToken) {
		action = audit.ActionTokenRefreshed
	}
	actor := audit.Actor{Kind: audit.ActorClient, ID: clientID}
	if sess := ar.GetSession(); sess != nil {
		if a, ok := subjectActor(sess.GetSubject()); ok {
			actor = a
		}
	}
	_, err := s.rec.Record(ctx, audit.Event{
		Actor: actor, ClientID: clientID, Action: action, Outcome: audit.OutcomeSuccess,
		Reason:    grantReason(ar.GetGrantTypes(), ar.GetGrantedScopes()),
		RequestID: requestID(rw),
	})
	return err
}

func grantReason(grantTypes fosite.Arguments, scopes fosite.Arguments) string {
	r := "grant_type=" + strings.Join(grantTypes, " ")
	if len(scopes) > 0 {
		r += " scope=" + strings.Join(scopes, " ")
	}
	if len(r) > audit.MaxReasonLen {
		r = r[:audit.MaxReasonLen]
	}
	return strings.ToValidUTF8(r, "")
}

// refused records a refused token request, with the OAuth error code as the
// reason, when it came from an identified client.
//
// Requests that identify no client, or only name a public client (whose id
// is public, so anyone can send them), are not recorded: the log is
// append-only forever and an attacker must not be able to fill it with
// garbage. Those go to the request log and metrics only. The exception is
// the reuse of a code or refresh token by a public client: it needed a real
// credential, and it revokes the grant, which is recorded.
func (s *Server) refused(ctx context.Context, rw http.ResponseWriter, ar fosite.AccessRequester, err error) {
	if ar == nil || ar.GetClient() == nil || ar.GetClient().GetID() == "" {
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	revoked := ""
	switch {
	case ar.GetGrantTypes().ExactOne(GrantRefreshToken) && errors.Is(err, fosite.ErrInactiveToken):
		revoked = "grant revoked: refresh token reuse"
	case ar.GetGrantTypes().ExactOne(GrantAuthorizationCode) && rfc.ErrorField == fosite.ErrInvalidGrant.ErrorField &&
		strings.HasPrefix(rfc.HintField, "The authorization code has already been used."):
		revoked = "grant revoked: authorization code reuse"
	}
	if ar.GetClient().IsPublic() && revoked == "" {
		return
	}
	clientID := ar.GetClient().GetID()
	base := audit.Event{
		Actor: audit.Actor{Kind: audit.ActorClient, ID: clientID}, ClientID: clientID, RequestID: requestID(rw),
	}
	events := make([]audit.Event, 0, 2)
	if revoked != "" {
		e := base
		e.Action, e.Outcome, e.Reason = audit.ActionTokenRevoked, audit.OutcomeSuccess, revoked
		events = append(events, e)
	}
	e := base
	e.Action, e.Outcome, e.Reason = audit.ActionRequestRefused, audit.OutcomeDenied, rfc.ErrorField
	if rfc.CodeField >= 500 {
		e.Outcome = audit.OutcomeError
	}
	events = append(events, e)
	for _, e := range events {
		// The request is refused whatever happens here; a lost record of a
		// refusal is logged.
		if _, rerr := s.rec.Record(ctx, e); rerr != nil {
			s.log.ErrorContext(ctx, "record refused token request", "client_id", clientID, "reason", e.Reason, "err", rerr)
		}
	}
}
