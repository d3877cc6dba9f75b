package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandated/mandated/mandate"
)

// Security events for resource servers (GET /api/events, docs/events.md):
// when a mandate ends, every resource server that may have received its
// tokens is sent a Security Event Token (RFC 8417) carrying the OpenID
// CAEP session-revoked event, in the shape the OpenID Shared Signals
// Framework 1.0 profiles (sub_id at the top level, typ secevent+jwt, no
// exp, no sub), signed with the key that signs access tokens so that
// subscribers verify it with the JWKS they already use.

// ScopeEventsRead lets a resource server follow the event stream. It is a
// service scope (mandate's catalogue): granted by client_credentials only.
const ScopeEventsRead = "events.read"

// SET constants.
const (
	// SecEventJWTType is the typ header of a SET (RFC 8417 §2.3, SSF 1.0 §4.1.1).
	SecEventJWTType = "secevent+jwt"
	// EventTypeSessionRevoked is CAEP 1.0's session-revoked event type.
	EventTypeSessionRevoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
)

// Errors of the event stream's authentication. The HTTP layer maps them:
// ErrSubscriberToken → 401 invalid_token, ErrSubscriberScope → 403
// insufficient_scope (RFC 6750 §3.1), ErrSubscriberUnavailable → 503.
var (
	// ErrSubscriberToken: the bearer token is not an active access token.
	ErrSubscriberToken = errors.New("the bearer token is not an active access token")
	// ErrSubscriberScope: the token is active but was not granted
	// events.read by client_credentials.
	ErrSubscriberScope = errors.New("the bearer token was not granted events.read by client_credentials")
	// ErrSubscriberUnavailable: the token could not be checked (storage failed).
	ErrSubscriberUnavailable = errors.New("the token could not be checked")
)

// Subscriber is a resource server authenticated for the event stream.
type Subscriber struct {
	ID      string    // its client id: the aud of the SETs it receives
	Expires time.Time // when its bearer token expires (zero: unknown)
}

// EventSubscriber authenticates a resource server by its bearer access
// token: active, issued by client_credentials (sub is the client) with
// scope events.read. Call it again to learn whether the token is still
// active (revoked, expired, client deleted); lookups go through
// introspection's token cache.
func (s *Server) EventSubscriber(ctx context.Context, bearer string) (Subscriber, error) {
	if bearer == "" {
		return Subscriber{}, ErrSubscriberToken
	}
	d, _, err := s.lookupAccess(ctx, bearer)
	if err != nil {
		if errors.Is(err, ErrReportUnavailable) {
			return Subscriber{}, fmt.Errorf("%w: %w", ErrSubscriberUnavailable, err)
		}
		return Subscriber{}, ErrSubscriberToken
	}
	if !hasScope(d.Scope, ScopeEventsRead) || d.Subject != d.ClientID {
		return Subscriber{}, ErrSubscriberScope
	}
	sub := Subscriber{ID: d.ClientID}
	if d.Expiry > 0 {
		sub.Expires = time.Unix(d.Expiry, 0).UTC()
	}
	return sub, nil
}

// SubjectID is an RFC 9493 subject identifier, or an SSF complex subject
// (format "complex" with session and user members).
type SubjectID struct {
	Format  string     `json:"format"`
	ID      string     `json:"id,omitempty"`    // format "opaque"
	Email   string     `json:"email,omitempty"` // format "email"
	Session *SubjectID `json:"session,omitempty"`
	User    *SubjectID `json:"user,omitempty"`
}

// SessionRevokedEvent is the CAEP session-revoked event object. EndReason
// is ours (SSF allows additional members): the mandate's end reason as a
// code (mandate.EndReason).
type SessionRevokedEvent struct {
	InitiatingEntity string            `json:"initiating_entity,omitempty"`
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
	ReasonUser       map[string]string `json:"reason_user,omitempty"`
	EventTimestamp   int64             `json:"event_timestamp"`
	EndReason        string            `json:"end_reason,omitempty"`
}

// SecurityEventToken is the payload of the SETs we sign. It has no sub
// and no exp (SSF 1.0 §4.1.3, §4.1.7).
type SecurityEventToken struct {
	Issuer   string                         `json:"iss"`
	ID       string                         `json:"jti"`
	IssuedAt int64                          `json:"iat"`
	Audience string                         `json:"aud"`
	Txn      string                         `json:"txn,omitempty"`
	SubID    SubjectID                      `json:"sub_id"`
	Events   map[string]SessionRevokedEvent `json:"events"`
}

// MandateEndedSET returns the SET telling subscriber (a client id) that the
// ended mandate m's session is revoked, signed with the current signing
// key; ok is false, with no SET, when m has not ended or subscriber may
// not see it.
//
// A subscriber sees the mandates whose tokens were issued to it (m's
// client) or for it (m's client registered it as an audience: the
// tokens' aud names it, as introspection's visibility rule says). Only an
// audience is told the holder's mailbox (a complex subject: the mandate as
// an opaque session id, the mailbox as the user's email); the client the
// tokens were issued to gets the mandate id alone. txn is the same for
// every SET about one ending ("ended:<mandate id>"): receivers drop
// duplicates by it.
func (s *Server) MandateEndedSET(ctx context.Context, subscriber string, m mandate.Mandate) (set string, ok bool, err error) {
	if m.State != mandate.StateEnded || subscriber == "" || m.ClientID == "" {
		return "", false, nil
	}
	audience := false
	c, err := s.store.GetClient(ctx, m.ClientID)
	switch {
	case errors.Is(err, fosite.ErrNotFound):
		// The client is gone: its registered audience with it.
	case err != nil:
		return "", false, fmt.Errorf("event for mandate %s: client %s: %w", m.ID, m.ClientID, err)
	default:
		audience = slices.Contains(c.GetAudience(), subscriber)
	}
	if !audience && m.ClientID != subscriber {
		return "", false, nil
	}
	session := SubjectID{Format: "opaque", ID: m.ID}
	sub := session
	if audience && m.Mailbox != "" {
		sub = SubjectID{Format: "complex", Session: &session, User: &SubjectID{Format: "email", Email: m.Mailbox}}
	}
	jti, err := randomID()
	if err != nil {
		return "", false, fmt.Errorf("event for mandate %s: jti: %w", m.ID, err)
	}
	initiator, admin, user := endWords(m.EndReason)
	claims := SecurityEventToken{
		Issuer: s.cfg.Issuer, ID: jti, IssuedAt: s.clock.Now().Unix(), Audience: subscriber,
		Txn: "ended:" + m.ID, SubID: sub,
		Events: map[string]SessionRevokedEvent{EventTypeSessionRevoked: {
			InitiatingEntity: initiator, ReasonAdmin: admin, ReasonUser: user,
			EventTimestamp: m.EndedAt.Unix(), EndReason: string(m.EndReason),
		}},
	}
	set, err = s.keys.SignSecurityEvent(claims)
	if err != nil {
		return "", false, fmt.Errorf("event for mandate %s: %w", m.ID, err)
	}
	return set, true, nil
}

// endWords are the CAEP initiating_entity and the reasons, for logs
// (reason_admin) and for the person using the application (reason_user),
// in English and French, of each end reason.
func endWords(r mandate.EndReason) (initiator string, admin, user map[string]string) {
	w := func(i, adminEN, adminFR, userEN, userFR string) (string, map[string]string, map[string]string) {
		return i, map[string]string{"en": adminEN, "fr": adminFR}, map[string]string{"en": userEN, "fr": userFR}
	}
	switch r {
	case mandate.EndedByHolder:
		return w("user", "Mandate ended by the holder.", "Mandat arrêté par la personne titulaire.",
			"The person stopped the session.", "La personne a arrêté la session.")
	case mandate.EndedByDelegate:
		return w("user", "Mandate ended by the person acting under it.", "Mandat terminé par la personne mandatée.",
			"The session was ended by the person acting for the holder.", "La session a été terminée par la personne qui agissait pour le compte du titulaire.")
	case mandate.EndedByAdmin:
		return w("admin", "Mandate ended by an administrator of the structure.", "Mandat terminé par un administrateur de la structure.",
			"An administrator of the organisation ended the session.", "Un administrateur de la structure a terminé la session.")
	case mandate.EndedByOffboarding:
		return w("admin", "Mandate ended: the account of the person acting under it was deactivated.", "Mandat terminé : le compte de la personne mandatée a été désactivé.",
			"The account of the person acting was deactivated.", "Le compte de la personne qui agissait a été désactivé.")
	case mandate.EndedByExpiry:
		return w("policy", "Mandate ended: its time window closed.", "Mandat terminé : sa période de validité est close.",
			"The planned time is over.", "La durée prévue est écoulée.")
	case mandate.EndedByPresence:
		return w("policy", "Mandate ended: the holder's presence was lost.", "Mandat terminé : la présence de la personne titulaire a été perdue.",
			"The person left the page or lost the connection.", "La personne a quitté la page ou perdu la connexion.")
	}
	return w("system", "Mandate ended.", "Mandat terminé.", "The session is over.", "La session est terminée.")
}

// SignSecurityEvent signs claims as a SET: JWS compact serialization,
// ES256 with the current signing key, header typ secevent+jwt and the
// key's kid, so that the JWKS verifies it. (Signer's typ is at+jwt: a SET
// must never pass for an access token, nor the reverse.)
func (km *KeyManager) SignSecurityEvent(claims any) (string, error) {
	km.mu.RLock()
	cur := km.current
	km.mu.RUnlock()
	if cur == nil {
		return "", errors.New("sign security event: no active signing key")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign security event: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: cur.key},
		(&jose.SignerOptions{}).WithType(SecEventJWTType))
	if err != nil {
		return "", fmt.Errorf("sign security event: signer %s: %w", cur.kid, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign security event: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign security event: %w", err)
	}
	return out, nil
}
