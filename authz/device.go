package authz

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/mandate"
)

// DeviceInterval is the minimum polling interval a device authorization
// response announces (RFC 8628 §3.2); slow_down adds 5 s to it (§3.5).
const DeviceInterval = 5 * time.Second

// StaffDirectory tells which structure a staff member belongs to, so that a
// device authorization request whose actor comes from an actor_token can
// name the structure its mandate is asked under. It returns an error
// wrapping mandate.ErrNotFound for an unknown staff member.
type StaffDirectory func(ctx context.Context, staffID string) (structureID string, err error)

// WithMandates turns on the device flow and mandate tokens (with
// WithDeviceStore): device authorization requests create mandates, the
// device code grant issues their tokens, and refresh and introspection
// consult them.
func WithMandates(m Mandates) Option { return func(o *options) { o.mandates = m } }

// WithDeviceStore sets where pending device authorizations are kept (with
// WithMandates).
func WithDeviceStore(d DeviceStore) Option { return func(o *options) { o.devices = d } }

// WithStaffDirectory sets how the device authorization endpoint finds the
// structure of the staff member named by an actor_token. Without it, that
// endpoint answers server_error to requests that carry an actor_token.
func WithStaffDirectory(f StaffDirectory) Option { return func(o *options) { o.staffDir = f } }

// deviceFlow is the RFC 8628 device flow's state.
type deviceFlow struct {
	mandates Mandates
	store    DeviceStore
	staffDir StaffDirectory
	// deviceKey and userKey key the HMAC signatures under which device and
	// user codes are stored (derived from Config.HMACSecret).
	deviceKey, userKey []byte
	guesses            *guessLimiter
	// cache keeps the mandates introspection asks about (mandate_cache.go).
	cache *mandateCache
}

func newDeviceFlow(cfg Config, m Mandates, d DeviceStore, dir StaffDirectory) (*deviceFlow, error) {
	deviceKey, err := hkdf.Key(sha256.New, cfg.HMACSecret, nil, "mandated device codes", 32)
	if err != nil {
		return nil, fmt.Errorf("authz: derive device code key: %w", err)
	}
	userKey, err := hkdf.Key(sha256.New, cfg.HMACSecret, nil, "mandated user codes", 32)
	if err != nil {
		return nil, fmt.Errorf("authz: derive user code key: %w", err)
	}
	return &deviceFlow{
		mandates: m, store: d, staffDir: dir, deviceKey: deviceKey, userKey: userKey,
		guesses: newGuessLimiter(defaultGuessLimits),
	}, nil
}

// DeviceFlowEnabled reports whether the device flow is on (WithMandates and
// WithDeviceStore).
func (s *Server) DeviceFlowEnabled() bool { return s.device != nil }

// errDeviceFlowOff answers device requests when the flow is off.
var errDeviceFlowOff = errors.New("authz: the device flow is not enabled")

func sign(key []byte, v string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newDeviceCode returns a device code (32 random bytes, base64url) and the
// signature it is stored under.
func (d *deviceFlow) newDeviceCode() (code, signature string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate device code: %w", err)
	}
	code = base64.RawURLEncoding.EncodeToString(b)
	return code, sign(d.deviceKey, code), nil
}

// deviceCodeSignature is the storage key of a device code a client sent, or
// false when it cannot be one of ours (so arbitrary bytes never reach the
// store).
func (d *deviceFlow) deviceCodeSignature(code string) (string, bool) {
	if len(code) != 43 || base64URLOnly(code) == "" {
		return "", false
	}
	return sign(d.deviceKey, code), true
}

// userCodeSignature is the storage key of a normalised user code.
func (d *deviceFlow) userCodeSignature(normalised string) string {
	return sign(d.userKey, normalised)
}

// AuthorizeDevice starts an RFC 8628 device authorization whose grant is a
// mandate: it checks the client (registered, allowed the device code grant
// and every scope asked), asks the mandate service for a mandate (which
// checks the actor, the holder and the structure's policy, and records the
// request), and stores the device and user codes (as HMAC signatures only).
// The codes live until the mandate's AnswerBy. Errors are
// *fosite.RFC6749Error values: invalid_request, invalid_client,
// unauthorized_client, invalid_scope or server_error.
func (s *Server) AuthorizeDevice(ctx context.Context, req DeviceRequest) (DeviceResponse, error) {
	if s.device == nil {
		return DeviceResponse{}, fosite.ErrServerError.WithWrap(errDeviceFlowOff).WithDebug(errDeviceFlowOff.Error())
	}
	if req.ClientID == "" {
		return DeviceResponse{}, fosite.ErrInvalidClient.WithHint("No client was named.")
	}
	client, err := s.store.GetClient(ctx, req.ClientID)
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) || errors.Is(err, mandate.ErrNotFound) {
			return DeviceResponse{}, fosite.ErrInvalidClient.WithHint("The client is not registered.")
		}
		return DeviceResponse{}, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		return DeviceResponse{}, fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the device authorization grant.")
	}
	scopes := dedupe(req.Scopes)
	if len(scopes) == 0 {
		return DeviceResponse{}, fosite.ErrInvalidScope.WithHint("A mandate needs at least one scope.")
	}
	if err := mandate.ValidateScopes(scopes); err != nil {
		return DeviceResponse{}, fosite.ErrInvalidScope.WithHint(err.Error())
	}
	for _, sc := range scopes {
		if mandate.IsServiceScope(sc) {
			return DeviceResponse{}, fosite.ErrInvalidScope.WithHintf("The scope '%s' is for services, never for a mandate.", sc)
		}
		if !fosite.ExactScopeStrategy(client.GetScopes(), sc) {
			return DeviceResponse{}, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", sc)
		}
	}
	if req.ActorStaffID == "" {
		return DeviceResponse{}, fosite.ErrInvalidRequest.WithHint("The staff member asking (the actor) is missing.")
	}
	if req.HolderID == "" && req.HolderMailbox == "" {
		return DeviceResponse{}, fosite.ErrInvalidRequest.WithHint("The holder is missing (holder_hint).")
	}
	kind := req.Kind
	if kind == "" {
		kind = mandate.KindSession
	}
	presence := req.Presence
	if presence == "" {
		presence = mandate.PresenceRequired
	}
	duration := req.Duration
	if duration == 0 && kind == mandate.KindSession {
		duration = mandate.DefaultSessionDuration
	}

	// The codes first: nothing is asked of the holder unless they exist.
	deviceCode, deviceSig, err := s.device.newDeviceCode()
	if err != nil {
		return DeviceResponse{}, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	m, err := s.device.mandates.Request(ctx, mandate.Request{
		Kind: kind, StructureID: req.ActorStructure, HolderID: req.HolderID, HolderMailbox: req.HolderMailbox,
		DelegateID: req.ActorStaffID, ClientID: client.GetID(), Scopes: scopes, IncludePersonal: req.IncludePersonal,
		Purpose: req.Purpose, PurposeCategory: req.PurposeCategory, Presence: presence, Duration: duration,
		NotBefore: req.NotBefore, NotAfter: req.NotAfter, RequestID: req.RequestID,
	})
	if err != nil {
		return DeviceResponse{}, mandateRequestError(err)
	}
	now := s.clock.Now()
	var userCode string
	for attempt := 0; ; attempt++ {
		if userCode, err = newUserCode(); err != nil {
			return DeviceResponse{}, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
		err = s.device.store.CreateDeviceAuthorization(ctx, DeviceAuthorization{
			DeviceCodeSignature: deviceSig, UserCodeSignature: s.device.userCodeSignature(userCode),
			MandateID: m.ID, ClientID: client.GetID(), Scopes: m.Scopes,
			RequestedAt: now, ExpiresAt: m.AnswerBy, Interval: DeviceInterval,
		})
		// A user code already pending (one chance in billions): draw another.
		if err == nil || !errors.Is(err, mandate.ErrAlreadyExists) || attempt == 2 {
			break
		}
	}
	if err != nil {
		// The mandate stays requested and lapses at AnswerBy, unanswerable.
		err = fmt.Errorf("store device authorization of mandate %s: %w", m.ID, err)
		return DeviceResponse{}, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	shown := formatUserCode(userCode)
	verification := s.cfg.URL(PathDeviceVerification)
	return DeviceResponse{
		DeviceCode: deviceCode, UserCode: shown,
		VerificationURI:         verification,
		VerificationURIComplete: verification + "?" + url.Values{"user_code": {shown}}.Encode(),
		ExpiresIn:               int64(math.Ceil(m.AnswerBy.Sub(now).Seconds())),
		Interval:                int64(DeviceInterval / time.Second),
		MandateID:               m.ID,
	}, nil
}

// mandateRequestError maps a refusal of the mandate service to the device
// authorization endpoint's errors: a scope the structure's policy does not
// allow (mandate.ErrPolicyScope) is invalid_scope; other policy refusals
// and malformed requests are invalid_request, described in plain words; an
// unknown holder or actor is invalid_request.
func mandateRequestError(err error) error {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) {
		return err
	}
	switch {
	case errors.Is(err, mandate.ErrPolicyScope):
		return fosite.ErrInvalidScope.WithHint(mandateRefusalHint(err, mandate.ErrPolicyScope)).WithWrap(err)
	case errors.Is(err, mandate.ErrPolicy):
		return fosite.ErrInvalidRequest.WithHint(mandateRefusalHint(err, mandate.ErrPolicy)).WithWrap(err)
	case errors.Is(err, mandate.ErrInvalidRequest):
		return fosite.ErrInvalidRequest.WithHint(mandateRefusalHint(err, mandate.ErrInvalidRequest)).WithWrap(err)
	case errors.Is(err, mandate.ErrNotFound):
		return fosite.ErrInvalidRequest.WithHint("The holder or the staff member asking is unknown, or not served by that structure.").WithWrap(err)
	}
	return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
}

// mandateRefusalHint is the plain reason of a refused mandate request, as
// a sentence: "request mandate: <reason>: <kind>" → "<Reason>.", a policy
// refusal saying it is one.
func mandateRefusalHint(err, kind error) string {
	msg := strings.TrimPrefix(err.Error(), "request mandate: ")
	msg = strings.TrimSuffix(msg, ": "+kind.Error())
	if msg == "" {
		msg = kind.Error()
	} else if errors.Is(kind, mandate.ErrPolicy) && !strings.Contains(msg, mandate.ErrPolicy.Error()) {
		msg = mandate.ErrPolicy.Error() + ": " + msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

// Device authorization request parameters (RFC 8628 §3.1, RFC 8693 §2.1
// for the actor, and our extensions: docs/mandates.md).
const (
	paramHolderHint      = "holder_hint"
	paramKind            = "kind"
	paramDuration        = "duration"
	paramNotBefore       = "not_before"
	paramNotAfter        = "not_after"
	paramPurpose         = "purpose"
	paramPurposeCategory = "purpose_category"
	paramPresence        = "presence"
	paramIncludePersonal = "include_personal"
	paramActorToken      = "actor_token"
	paramActorTokenType  = "actor_token_type"
)

var deviceParams = []string{
	"client_id", "scope", paramHolderHint, paramKind, paramDuration, paramNotBefore, paramNotAfter, paramPurpose,
	paramPurposeCategory, paramPresence, paramIncludePersonal, paramActorToken, paramActorTokenType,
}

// DeviceAuthorization serves the device authorization endpoint (RFC 8628
// §3.1–3.2). The client authenticates as at the token endpoint (a public
// client sends its client_id); the staff member asking is named by an
// actor_token (RFC 8693 §2.1): one of our live access tokens, issued to or
// meant for this client, whose subject is the staff member.
func (s *Server) DeviceAuthorization(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.device == nil {
		s.writeError(rw, r, fosite.ErrInvalidRequest.WithHint("The device authorization grant is not enabled on this server."))
		return
	}
	form, err := s.parsePost(r)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	client, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		s.writeError(rw, r, fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the device authorization grant."))
		return
	}
	req, err := s.deviceRequest(ctx, client, form)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	req.RequestID = requestID(rw)
	resp, err := s.AuthorizeDevice(ctx, req)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, resp)
}

// deviceRequest reads a device authorization request's parameters.
func (s *Server) deviceRequest(ctx context.Context, client fosite.Client, form url.Values) (DeviceRequest, error) {
	for _, p := range deviceParams {
		if len(form[p]) > 1 {
			return DeviceRequest{}, fosite.ErrInvalidRequest.WithHintf("The '%s' parameter is included more than once.", p)
		}
	}
	req := DeviceRequest{
		ClientID:        client.GetID(),
		Scopes:          fosite.RemoveEmpty(strings.Split(form.Get("scope"), " ")),
		Kind:            mandate.Kind(form.Get(paramKind)),
		HolderMailbox:   strings.TrimSpace(form.Get(paramHolderHint)),
		Purpose:         form.Get(paramPurpose),
		PurposeCategory: mandate.PurposeCategory(form.Get(paramPurposeCategory)),
		Presence:        mandate.Presence(form.Get(paramPresence)),
	}
	if req.Kind != "" && !req.Kind.Valid() {
		return req, fosite.ErrInvalidRequest.WithHintf("The 'kind' parameter must be '%s' or '%s'.", mandate.KindSession, mandate.KindDelegation)
	}
	if req.Presence != "" && req.Presence != mandate.PresenceRequired && req.Presence != mandate.PresenceRelaxed {
		return req, fosite.ErrInvalidRequest.WithHintf("The 'presence' parameter must be '%s' or '%s'.", mandate.PresenceRequired, mandate.PresenceRelaxed)
	}
	if v := form.Get(paramDuration); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > int64(mandate.MaxDelegationDurationCap/time.Second) {
			return req, fosite.ErrInvalidRequest.WithHint("The 'duration' parameter must be a positive number of seconds.")
		}
		req.Duration = time.Duration(n) * time.Second
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{paramNotBefore, &req.NotBefore}, {paramNotAfter, &req.NotAfter}} {
		if v := form.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return req, fosite.ErrInvalidRequest.WithHintf("The '%s' parameter must be an RFC 3339 date and time.", f.name)
			}
			*f.to = t.UTC()
		}
	}
	if v := form.Get(paramIncludePersonal); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return req, fosite.ErrInvalidRequest.WithHint("The 'include_personal' parameter must be 'true' or 'false'.")
		}
		req.IncludePersonal = b
	}
	staffID, err := s.actorFromToken(ctx, client, form.Get(paramActorToken), form.Get(paramActorTokenType))
	if err != nil {
		return req, err
	}
	req.ActorStaffID = staffID
	if s.device.staffDir == nil {
		err := errors.New("authz: no staff directory (WithStaffDirectory) to find the actor's structure")
		return req, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	structure, err := s.device.staffDir(ctx, staffID)
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return req, fosite.ErrInvalidRequest.WithHint("The actor_token names an unknown staff member.").WithWrap(err)
	case err != nil:
		return req, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	req.ActorStructure = structure
	return req, nil
}

// actorFromToken checks an RFC 8693 actor_token: an access token of ours
// (TokenTypeAccessToken), active (signature, expiry, not revoked, and a
// mandate token's mandate live), that the client may see (issued to it or
// meant for it), whose subject is a staff member. Every failure is
// invalid_request (RFC 8693 §2.2.2).
func (s *Server) actorFromToken(ctx context.Context, client fosite.Client, token, tokenType string) (string, error) {
	if token == "" {
		return "", fosite.ErrInvalidRequest.WithHint("The 'actor_token' parameter is missing: it names the staff member asking.")
	}
	if tokenType != TokenTypeAccessToken {
		return "", fosite.ErrInvalidRequest.WithHintf("The 'actor_token_type' parameter must be '%s'.", TokenTypeAccessToken)
	}
	use, ar, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, &fosite.DefaultSession{})
	if err != nil {
		if errors.Is(err, fosite.ErrServerError) {
			return "", fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
		return "", fosite.ErrInvalidRequest.WithHint("The actor_token is not an active access token.").WithWrap(err)
	}
	if use != fosite.AccessToken {
		return "", fosite.ErrInvalidRequest.WithHint("The actor_token is not an access token.")
	}
	d := s.describe(use, ar)
	if !mayIntrospect(client.GetID(), d) {
		return "", fosite.ErrInvalidRequest.WithHint("The actor_token was neither issued to this client nor meant for it.")
	}
	kind, id, ok := strings.Cut(d.Subject, ":")
	if !ok || kind != "staff" || id == "" || d.MandateID != "" {
		return "", fosite.ErrInvalidRequest.WithHint("The actor_token does not name a staff member.")
	}
	return id, nil
}

// grantTypeEnabled reports whether the token endpoint serves grant type gt.
func (s *Server) grantTypeEnabled(gt string) bool {
	if gt == GrantTypeDeviceCode {
		return s.device != nil
	}
	return slices.Contains(supportedGrantTypes, gt)
}

// enabledGrantTypes lists the grant types the token endpoint serves.
func (s *Server) enabledGrantTypes() []string {
	out := make([]string, 0, len(supportedGrantTypes))
	for _, gt := range supportedGrantTypes {
		if s.grantTypeEnabled(gt) {
			out = append(out, gt)
		}
	}
	return out
}

// pruneDevices forgets device authorizations that expired (Run calls it).
func (s *Server) pruneDevices(ctx context.Context) {
	if s.device == nil {
		return
	}
	if _, err := s.device.store.PruneDeviceAuthorizations(ctx, s.clock.Now()); err != nil {
		s.log.ErrorContext(ctx, "prune device authorizations", "err", err)
	}
}
