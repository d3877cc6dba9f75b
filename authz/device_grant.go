package authz

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"
	"github.com/ory/x/errorsx"

	"github.com/mandated/mandated/mandate"
)

// RFC 8628 §3.5 token endpoint errors of the device code grant, all with
// status 400 (RFC 6749 §5.2). fosite's ErrAccessDenied answers 403 (it is
// an authorization endpoint error); the device grant's access_denied is a
// token endpoint error.
var (
	ErrAuthorizationPending = &fosite.RFC6749Error{
		ErrorField:       "authorization_pending",
		DescriptionField: "The authorization request is still pending: the holder has not answered yet.",
		CodeField:        http.StatusBadRequest,
	}
	ErrSlowDown = &fosite.RFC6749Error{
		ErrorField:       "slow_down",
		DescriptionField: "The authorization request is still pending and polling should continue, with the interval increased by 5 seconds for this and all subsequent requests.",
		CodeField:        http.StatusBadRequest,
	}
	ErrDeviceAccessDenied = &fosite.RFC6749Error{
		ErrorField:       "access_denied",
		DescriptionField: "The holder refused the request.",
		CodeField:        http.StatusBadRequest,
	}
	ErrExpiredToken = &fosite.RFC6749Error{
		ErrorField:       "expired_token",
		DescriptionField: "The device code expired before the holder answered: start a new device authorization request.",
		CodeField:        http.StatusBadRequest,
	}
)

// deviceGrantHandler is the device code grant (RFC 8628 §3.4–3.5) as a
// fosite token endpoint handler. The device code names a pending device
// authorization, which names a mandate; the mandate's state answers.
type deviceGrantHandler struct{ s *Server }

var _ fosite.TokenEndpointHandler = (*deviceGrantHandler)(nil)

func (h *deviceGrantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeDeviceCode)
}

// CanSkipClientAuth is false: a confidential client authenticates, a public
// client names itself with client_id (RFC 8628 §3.4).
func (h *deviceGrantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// HandleTokenEndpointRequest validates a device access token request: the
// client may use the grant, the device code is one of ours, issued to this
// client, polled no faster than its interval (slow_down), unexpired
// (expired_token), and its mandate answered: requested is
// authorization_pending, refused is access_denied, lapsed is
// expired_token, approved and exchangeable gets tokens (a delegation
// approved ahead of its window too: see mandate.Mandate.Exchangeable),
// anything else (already
// exchanged, ended) is invalid_grant.
func (h *deviceGrantHandler) HandleTokenEndpointRequest(ctx context.Context, request fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, request) {
		return errorsx.WithStack(fosite.ErrUnknownRequest)
	}
	client := request.GetClient()
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		return errorsx.WithStack(fosite.ErrUnauthorizedClient.WithHintf("The OAuth 2.0 Client is not allowed to use authorization grant '%s'.", GrantTypeDeviceCode))
	}
	dev := h.s.device
	code := request.GetRequestForm().Get("device_code")
	if code == "" {
		return errorsx.WithStack(fosite.ErrInvalidRequest.WithHint("The 'device_code' parameter is missing."))
	}
	unknown := fosite.ErrInvalidGrant.WithHint("The device code is unknown, already used, or expired.")
	sig, ok := dev.deviceCodeSignature(code)
	if !ok {
		return errorsx.WithStack(unknown)
	}
	now := h.s.clock.Now()
	d, tooFast, err := dev.store.PollDeviceAuthorization(ctx, sig, now)
	if errors.Is(err, mandate.ErrNotFound) || errors.Is(err, fosite.ErrNotFound) {
		return errorsx.WithStack(unknown)
	} else if err != nil {
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	if d.ClientID != client.GetID() {
		return errorsx.WithStack(fosite.ErrInvalidGrant.WithHint("The device code was issued to another client."))
	}
	if tooFast {
		return errorsx.WithStack(ErrSlowDown)
	}
	finished := func(e *fosite.RFC6749Error) error {
		// The answer is final: the device code goes (a later poll is
		// invalid_grant).
		if err := dev.store.DeleteDeviceAuthorization(ctx, sig); err != nil {
			h.s.log.ErrorContext(ctx, "delete device authorization", "mandate_id", d.MandateID, "err", err)
		}
		return errorsx.WithStack(e)
	}
	m, err := dev.mandates.Get(ctx, d.MandateID)
	if errors.Is(err, mandate.ErrNotFound) {
		return finished(unknown)
	} else if err != nil {
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	if m.ClientID != d.ClientID {
		return errorsx.WithStack(fosite.ErrInvalidGrant.WithHint("The device code was issued to another client."))
	}
	switch {
	case m.State == mandate.StateRefused:
		return finished(ErrDeviceAccessDenied)
	case m.State == mandate.StateUnanswered,
		m.State == mandate.StateRequested && (!now.Before(d.ExpiresAt) || !now.Before(m.AnswerBy)):
		return finished(ErrExpiredToken)
	case m.State == mandate.StateRequested:
		return errorsx.WithStack(ErrAuthorizationPending)
	case m.State == mandate.StateApproved && m.Exchangeable(now):
	default:
		return finished(fosite.ErrInvalidGrant.WithHint("The mandate of this device code is no longer awaiting its first token: it was already exchanged, or it ended."))
	}

	// The tokens carry the mandate's scopes, and the client's registered
	// audience (the mail server that will introspect them); never past
	// the mandate's end.
	sess := mandateSession(m)
	request.SetSession(sess)
	request.SetRequestedScopes(fosite.Arguments(m.Scopes))
	for _, sc := range m.Scopes {
		request.GrantScope(sc)
	}
	request.SetRequestedAudience(client.GetAudience())
	for _, aud := range client.GetAudience() {
		request.GrantAudience(aud)
	}
	sess.SetExpiresAt(fosite.AccessToken, capAt(now.Add(h.s.cfg.AccessTokenLifetime), m.NotAfter).Round(time.Second))
	if client.GetGrantTypes().Has(GrantRefreshToken) {
		sess.SetExpiresAt(fosite.RefreshToken, capAt(now.Add(h.s.cfg.RefreshTokenLifetime), m.NotAfter).Round(time.Second))
	}
	return nil
}

// capAt returns t, or limit when t is after it.
func capAt(t, limit time.Time) time.Time {
	if !limit.IsZero() && t.After(limit) {
		return limit
	}
	return t
}

// PopulateTokenEndpointResponse issues the tokens of an approved mandate:
// the mandate turns active (Mandates.Activate, which refuses a second
// time: a device code is single-use) before any token is stored, then the
// tokens are stored and the device authorization forgotten.
func (h *deviceGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, requester fosite.AccessRequester, responder fosite.AccessResponder) (err error) {
	if !h.CanHandleTokenEndpointRequest(ctx, requester) {
		return errorsx.WithStack(fosite.ErrUnknownRequest)
	}
	mc, ok := mandateClaimsOf(requester.GetSession())
	if !ok {
		return errorsx.WithStack(fosite.ErrServerError.WithDebug("device code grant without a mandate session"))
	}
	strategy := h.s.strategy
	access, accessSig, err := strategy.GenerateAccessToken(ctx, requester)
	if err != nil {
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	var refresh, refreshSig string
	if requester.GetClient().GetGrantTypes().Has(GrantRefreshToken) {
		if refresh, refreshSig, err = strategy.GenerateRefreshToken(ctx, requester); err != nil {
			return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		}
	}
	if _, err := h.s.device.mandates.Activate(ctx, mc.MandateID, requester.GetID(), httpRequestID(ctx)); err != nil {
		if errors.Is(err, mandate.ErrConflict) || errors.Is(err, mandate.ErrNotFound) {
			return errorsx.WithStack(fosite.ErrInvalidGrant.WithHint("The device code was already used, or its mandate is no longer live.").WithWrap(err))
		}
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}

	if err = h.storeTokens(ctx, requester, accessSig, refreshSig); err != nil {
		return err
	}
	if sig, ok := h.s.device.deviceCodeSignature(requester.GetRequestForm().Get("device_code")); ok {
		if derr := h.s.device.store.DeleteDeviceAuthorization(ctx, sig); derr != nil {
			// Harmless: the mandate is active, so the code answers invalid_grant.
			h.s.log.ErrorContext(ctx, "delete device authorization", "mandate_id", mc.MandateID, "err", derr)
		}
	}

	responder.SetAccessToken(access)
	responder.SetTokenType("bearer")
	now := h.s.clock.Now()
	responder.SetExpiresIn(requester.GetSession().GetExpiresAt(fosite.AccessToken).Sub(now))
	responder.SetScopes(requester.GetGrantedScopes())
	if refresh != "" {
		responder.SetExtra("refresh_token", refresh)
	}
	return nil
}

// storeTokens stores the access and refresh token records in one transaction.
func (h *deviceGrantHandler) storeTokens(ctx context.Context, requester fosite.AccessRequester, accessSig, refreshSig string) (err error) {
	st := h.s.store
	ctx, err = storage.MaybeBeginTx(ctx, st)
	if err != nil {
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	defer func() {
		if err != nil {
			if rbErr := storage.MaybeRollbackTx(ctx, st); rbErr != nil {
				err = errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebugf("error: %s; rollback error: %s", err, rbErr))
			}
		}
	}()
	if err = st.CreateAccessTokenSession(ctx, accessSig, requester.Sanitize([]string{})); err != nil {
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	if refreshSig != "" {
		if err = st.CreateRefreshTokenSession(ctx, refreshSig, accessSig, requester.Sanitize([]string{})); err != nil {
			return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		}
	}
	if err = storage.MaybeCommitTx(ctx, st); err != nil {
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	return nil
}

type httpRequestIDKey struct{}

// withHTTPRequestID carries the HTTP request id into fosite handlers (for
// the audit events the mandate service records).
func withHTTPRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, httpRequestIDKey{}, id)
}

func httpRequestID(ctx context.Context) string {
	id, _ := ctx.Value(httpRequestIDKey{}).(string)
	return id
}
