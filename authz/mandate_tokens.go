package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// Mandate tokens: the tokens of the device code grant, issued under a
// mandate. Their subject is the holder ("holder:<id>"); the staff member
// acting is the actor (RFC 8693 §4.1 act); what they may do is an RFC 9396
// authorization detail of type AuthorizationDetailsType. They live only
// while the mandate does (window, state, presence lease): introspection
// and refresh ask the mandate service every time.

// ActClaim is RFC 8693 §4.1's act claim.
type ActClaim struct {
	Sub string `json:"sub"`
}

// AuthorizationDetail is one RFC 9396 authorization detail of type
// AuthorizationDetailsType: the mailbox (a mailto: URI in locations), the
// actions (scopes) granted on it, the kinds of messages excluded, and the
// mandate.
type AuthorizationDetail struct {
	Type       string   `json:"type"`
	Locations  []string `json:"locations"`
	Actions    []string `json:"actions"`
	Exclusions []string `json:"exclusions"`
	MandateID  string   `json:"mandate_id"`
}

// mandateClaims is what a mandate token says about its mandate.
type mandateClaims struct {
	MandateID  string
	ActorSub   string // "staff:<id>"
	Mailbox    string
	Actions    []string
	Exclusions []string
	NotAfter   time.Time
	NotBefore  time.Time // the window's start (delegations)
}

func (c mandateClaims) details() []AuthorizationDetail {
	return []AuthorizationDetail{{
		Type: AuthorizationDetailsType, Locations: []string{"mailto:" + c.Mailbox},
		Actions: nonNil(c.Actions), Exclusions: nonNil(c.Exclusions), MandateID: c.MandateID,
	}}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mandateSession is the session of a mandate's tokens.
func mandateSession(m mandate.Mandate) *fosite.DefaultSession {
	return &fosite.DefaultSession{
		Subject: "holder:" + m.HolderID,
		Extra: map[string]interface{}{
			ExtraMandateID: m.ID,
			ExtraActorSub:  "staff:" + m.DelegateID,
			ExtraMailbox:   m.Mailbox,
			ExtraActions:   append([]string{}, m.Scopes...),
			ExtraExclusion: append([]string{}, m.Exclusions...),
			ExtraNotAfter:  m.NotAfter.Unix(),
			ExtraNotBefore: m.NotBefore.Unix(),
		},
	}
}

// mandateClaimsOf reads a session's mandate (its Extra, as issued or after
// a JSON round trip through storage); false for other sessions.
func mandateClaimsOf(s fosite.Session) (mandateClaims, bool) {
	switch ms := s.(type) {
	case *introspectedMandate:
		return ms.claims, true
	case accessSnapshot:
		if ms.mandate != nil {
			return *ms.mandate, true
		}
		return mandateClaims{}, false
	}
	sess, ok := s.(*fosite.DefaultSession)
	if !ok || sess == nil {
		return mandateClaims{}, false
	}
	id, _ := sess.Extra[ExtraMandateID].(string)
	if id == "" {
		return mandateClaims{}, false
	}
	c := mandateClaims{MandateID: id}
	c.ActorSub, _ = sess.Extra[ExtraActorSub].(string)
	c.Mailbox, _ = sess.Extra[ExtraMailbox].(string)
	c.Actions = extraStrings(sess.Extra[ExtraActions])
	c.Exclusions = extraStrings(sess.Extra[ExtraExclusion])
	c.NotAfter = extraTime(sess.Extra[ExtraNotAfter])
	c.NotBefore = extraTime(sess.Extra[ExtraNotBefore])
	return c, true
}

// extraTime reads a Unix time from a session's Extra (as issued, or after a
// JSON round trip through storage); zero when absent.
func extraTime(v any) time.Time {
	switch v := v.(type) {
	case int64:
		return time.Unix(v, 0).UTC()
	case float64:
		return time.Unix(int64(v), 0).UTC()
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Time{}
}

func extraStrings(v any) []string {
	switch v := v.(type) {
	case []string:
		return append([]string{}, v...)
	case []interface{}:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// mandateClaimsOfJWT reads the mandate claims of an access token whose
// signature introspection has just verified (or that equals, byte for
// byte, a verified cached one): act, mandate_id and our authorization
// detail. False when it carries no mandate_id.
func mandateClaimsOfJWT(token string) (mandateClaims, bool, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return mandateClaims{}, false, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return mandateClaims{}, false, fmt.Errorf("payload: %w", err)
	}
	var c struct {
		Act                  *ActClaim             `json:"act"`
		MandateID            string                `json:"mandate_id"`
		AuthorizationDetails []AuthorizationDetail `json:"authorization_details"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return mandateClaims{}, false, fmt.Errorf("claims: %w", err)
	}
	if c.MandateID == "" {
		return mandateClaims{}, false, nil
	}
	out := mandateClaims{MandateID: c.MandateID}
	if c.Act != nil {
		out.ActorSub = c.Act.Sub
	}
	for _, d := range c.AuthorizationDetails {
		if d.Type != AuthorizationDetailsType || d.MandateID != c.MandateID {
			continue
		}
		for _, l := range d.Locations {
			if mb, ok := strings.CutPrefix(l, "mailto:"); ok {
				out.Mailbox = mb
				break
			}
		}
		out.Actions, out.Exclusions = d.Actions, d.Exclusions
		break
	}
	return out, true, nil
}

// mandateLive is the one place that asks whether a mandate's tokens may
// live at now (mandate.Mandate.Live: state, window, presence lease). An
// unknown mandate is not live; other failures are errors.
//
// It answers from the mandate cache (mandate_cache.go) and reads storage on
// a miss, or when the cached lease looks lapsed: heartbeats on any replica
// move the lease without telling the others, so only a fresh read can say
// whether it really lapsed.
func (s *Server) mandateLive(ctx context.Context, id string) (mandate.Mandate, bool, error) {
	if s.device == nil {
		return mandate.Mandate{}, false, nil // no mandate service: fail closed
	}
	now := s.clock.Now()
	m, ok, gen := s.device.cache.get(id)
	if ok && (m.Live(now) || !leaseMayHaveMoved(m, now)) {
		return m, m.Live(now), nil
	}
	m, err := s.device.mandates.Get(ctx, id)
	if errors.Is(err, mandate.ErrNotFound) {
		return mandate.Mandate{}, false, nil
	}
	if err != nil {
		return mandate.Mandate{}, false, fmt.Errorf("mandate %s: %w", id, err)
	}
	s.device.cache.put(m, gen)
	return m, m.Live(now), nil
}

// leaseMayHaveMoved reports whether a cached mandate that is not live at
// now could be live after all: only its presence lease can have moved
// without a bus message (a heartbeat), and only while the mandate is
// approved or active inside its window.
func leaseMayHaveMoved(m mandate.Mandate, now time.Time) bool {
	return (m.State == mandate.StateActive || m.State == mandate.StateApproved) &&
		m.Presence == mandate.PresenceRequired &&
		!now.Before(m.NotBefore) && now.Before(m.NotAfter)
}

// onBusMessage drops a changed mandate from the cache ("mandate:<id>"), or
// every mandate on FlushAll (messages may have been missed).
func (d *deviceFlow) onBusMessage(msg string) {
	if msg == FlushAll {
		d.cache.flush()
		return
	}
	if id, ok := strings.CutPrefix(msg, MandateMessagePrefix); ok {
		d.cache.evict(id)
	}
}

// introspectedMandate is the session introspection hands to describe for
// a mandate token whose mandate is live: the token's session with its
// mandate claims and the holder's presence.
type introspectedMandate struct {
	fosite.Session
	claims   mandateClaims
	presence string // "present" or "not_required"
}

// Clone keeps the wrapper.
func (m *introspectedMandate) Clone() fosite.Session {
	c := *m
	if m.Session != nil {
		c.Session = m.Session.Clone()
	}
	return &c
}

func presenceOf(m mandate.Mandate) string {
	if m.Presence == mandate.PresenceRequired {
		return "present"
	}
	return "not_required"
}

// describeMandate adds a mandate token's fields to an introspection
// response: the standard nested act and authorization_details, and the
// flat strings mail servers read (username: the mailbox; act_sub; rights:
// the actions, space-separated).
func describeMandate(resp *introspectionResponse, m *introspectedMandate) {
	c := m.claims
	resp.MandateID = c.MandateID
	if c.ActorSub != "" {
		resp.Act = &ActClaim{Sub: c.ActorSub}
		resp.ActSub = c.ActorSub
	}
	resp.Username = c.Mailbox
	resp.Rights = strings.Join(c.Actions, " ")
	resp.AuthorizationDetails = c.details()
	resp.Presence = m.presence
}

// checkMandateGrant gates a refresh of a mandate token: refused with
// invalid_grant unless the mandate is live now; the new tokens never
// outlive the mandate's window.
func (s *Server) checkMandateGrant(ctx context.Context, ar fosite.AccessRequester) error {
	if ar == nil || !ar.GetGrantTypes().ExactOne(GrantRefreshToken) {
		return nil
	}
	c, ok := mandateClaimsOf(ar.GetSession())
	if !ok {
		return nil
	}
	m, live, err := s.mandateLive(ctx, c.MandateID)
	if err != nil {
		return fosite.ErrServerError.WithHint("The mandate could not be checked.").WithWrap(err).WithDebug(err.Error())
	}
	if !live {
		return fosite.ErrInvalidGrant.WithHint("The mandate of this grant has ended, is outside its window, or the holder is no longer present.")
	}
	sess := ar.GetSession()
	for _, tt := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken} {
		if exp := sess.GetExpiresAt(tt); exp.IsZero() || exp.After(m.NotAfter) {
			sess.SetExpiresAt(tt, m.NotAfter)
		}
	}
	return nil
}

// TokenHook is told each time tokens were issued (refreshed false: the
// device code exchange) or refreshed under a mandate, once they are stored
// and recorded in the audit log. It runs on the token request before the
// answer is written, so it must return at once (slow work such as sending
// a message belongs in a goroutine, with its own deadline: ctx ends with
// the request), and it cannot fail the request.
type TokenHook func(ctx context.Context, mandateID string, refreshed bool)

// WithTokenHook sets the hook told of every mandate's tokens (the binary
// notifies the holder of a colleague's access under a delegation).
func WithTokenHook(h TokenHook) Option { return func(o *options) { o.tokenHook = h } }

// recordTokens records issued tokens (recordIssued), naming the mandate for
// mandate tokens: the actor is the staff member acting, the holder the
// person acted for. Then, for mandate tokens, it tells the token hook.
func (s *Server) recordTokens(ctx context.Context, rw http.ResponseWriter, ar fosite.AccessRequester) error {
	c, ok := mandateClaimsOf(ar.GetSession())
	if !ok {
		return s.recordIssued(ctx, rw, ar)
	}
	clientID := ar.GetClient().GetID()
	action := audit.ActionTokenIssued
	refreshed := ar.GetGrantTypes().ExactOne(GrantRefreshToken)
	if refreshed {
		action = audit.ActionTokenRefreshed
	}
	actor, ok := subjectActor(c.ActorSub)
	if !ok {
		actor = audit.Actor{Kind: audit.ActorClient, ID: clientID}
	}
	holder := ""
	if a, ok := subjectActor(ar.GetSession().GetSubject()); ok && a.Kind == audit.ActorHolder {
		holder = a.ID
	}
	_, err := s.rec.Record(ctx, audit.Event{
		Actor: actor, Holder: holder, MandateID: c.MandateID, ClientID: clientID,
		Action: action, Outcome: audit.OutcomeSuccess,
		Reason:    grantReason(ar.GetGrantTypes(), ar.GetGrantedScopes()),
		RequestID: requestID(rw),
	})
	if err != nil {
		return err
	}
	if s.tokenHook != nil {
		s.tokenHook(ctx, c.MandateID, refreshed)
	}
	return nil
}

// RevokeGrant ends every access and refresh token of a grant (the request
// ID that names a token family) in storage, and announces it on the
// revocation bus so that every replica's introspection cache drops them at
// once. It makes *Server a mandate.Revoker: ending a mandate revokes its
// grant. Revoking a grant with no tokens left is not an error.
func (s *Server) RevokeGrant(ctx context.Context, grantID string) error {
	if grantID == "" {
		return errors.New("authz: revoke an empty grant id")
	}
	// Announced whatever happens: a cache never keeps what storage may
	// have dropped.
	defer s.store.publish(ctx, grantID)
	var errs []error
	if err := s.store.Storage.RevokeAccessToken(ctx, grantID); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		errs = append(errs, fmt.Errorf("revoke access tokens of grant %s: %w", grantID, err))
	}
	if err := s.store.Storage.RevokeRefreshToken(ctx, grantID); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		errs = append(errs, fmt.Errorf("revoke refresh tokens of grant %s: %w", grantID, err))
	}
	return errors.Join(errs...)
}

var _ mandate.Revoker = (*Server)(nil)
