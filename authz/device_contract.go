package authz

import (
	"context"
	"time"

	"github.com/mandated/mandated/mandate"
)

// RFC 8628 paths. The verification page is served by package ui.
const (
	PathDeviceAuthorization = "/oauth2/device_authorization"
	PathDeviceVerification  = "/device"
)

// GrantTypeDeviceCode is the device code grant type (RFC 8628 §3.4).
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// TokenTypeAccessToken is RFC 8693's token type for an actor_token that is
// an access token.
const TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// DeviceAuthorization is a pending RFC 8628 device authorization: the
// device code and user code (stored as HMAC signatures, never in clear)
// point at the mandate the holder is asked to approve. The mandate's state
// answers the polling client (requested: authorization_pending; refused:
// access_denied; expired_unanswered or past ExpiresAt: expired_token;
// approved: tokens; anything else: invalid_grant).
type DeviceAuthorization struct {
	DeviceCodeSignature string
	UserCodeSignature   string
	MandateID           string
	ClientID            string
	Scopes              []string
	RequestedAt         time.Time
	ExpiresAt           time.Time
	// Interval is the minimum polling interval; slow_down adds 5 s to it.
	Interval     time.Duration
	LastPolledAt time.Time // zero until the first poll
}

// DeviceStore persists device authorizations. The gorm store implements it
// (store/device.go), checked on both dialects by store/storetest.
type DeviceStore interface {
	// CreateDeviceAuthorization stores d; ErrAlreadyExists when either code
	// signature is taken.
	CreateDeviceAuthorization(ctx context.Context, d DeviceAuthorization) error
	// DeviceAuthorizationByUserCode finds a pending authorization by its
	// user-code signature; ErrNotFound when none.
	DeviceAuthorizationByUserCode(ctx context.Context, userCodeSignature string) (DeviceAuthorization, error)
	// PollDeviceAuthorization records one poll at now, atomically (row lock
	// or one UPDATE): it returns the authorization as it was before this
	// poll, and tooFast when the previous poll was less than Interval −
	// PollLeeway before now — then the stored Interval grows by 5 s
	// (RFC 8628 §3.5).
	// LastPolledAt becomes now either way. ErrNotFound when unknown.
	PollDeviceAuthorization(ctx context.Context, deviceCodeSignature string, now time.Time) (d DeviceAuthorization, tooFast bool, err error)
	// DeleteDeviceAuthorization removes one (after its tokens were issued
	// or it was refused); no error when already gone.
	DeleteDeviceAuthorization(ctx context.Context, deviceCodeSignature string) error
	// PruneDeviceAuthorizations deletes those that expired before t.
	PruneDeviceAuthorizations(ctx context.Context, before time.Time) (int, error)
}

// PollLeeway forgives a poll that arrives that much early: a client
// ticking at exactly the interval would otherwise get slow_down from
// network jitter alone.
const PollLeeway = time.Second

// Mandates is what the authorization server needs of the mandate service
// (*mandate.Service).
type Mandates interface {
	Request(ctx context.Context, req mandate.Request) (mandate.Mandate, error)
	Get(ctx context.Context, id string) (mandate.Mandate, error)
	Activate(ctx context.Context, mandateID, grantID, requestID string) (mandate.Mandate, error)
}

// DeviceRequest is a device authorization request: RFC 8628 §3.1's client
// and scope, with our extensions (docs/mandates.md). The actor is the staff
// member asking: from an actor_token at the HTTP endpoint, or from the
// console's signed-in session when the console calls AuthorizeDevice.
type DeviceRequest struct {
	ClientID        string
	Scopes          []string
	Kind            mandate.Kind
	HolderMailbox   string // holder_hint: the holder's mailbox address
	HolderID        string // or the holder's id (the console)
	Duration        time.Duration
	NotBefore       time.Time // delegations
	NotAfter        time.Time
	Purpose         string
	PurposeCategory mandate.PurposeCategory
	Presence        mandate.Presence
	IncludePersonal bool
	ActorStaffID    string
	ActorStructure  string
	RequestID       string
}

// DeviceResponse is RFC 8628 §3.2's response.
type DeviceResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
	// MandateID is our extension: the console follows the mandate's state.
	MandateID string `json:"mandate_id"`
}

// Session Extra keys of mandate tokens (read by the token strategy,
// introspection and refresh).
const (
	ExtraMandateID = "mandate_id"
	ExtraActorSub  = "act_sub"  // "staff:<id>"
	ExtraMailbox   = "mailbox"  // the holder's mailbox address
	ExtraActions   = "actions"  // []string: the mailbox actions granted
	ExtraExclusion = "excluded" // []string: exclusions ("personal")
	ExtraNotAfter  = "not_after"
	// ExtraNotBefore: the window's start; an access token issued before it
	// carries it as nbf (a delegation exchanged ahead of its window).
	ExtraNotBefore = "not_before"
)

// AuthorizationDetailsType is the RFC 9396 type of our mailbox
// authorization details (docs/mandates.md).
const AuthorizationDetailsType = "urn:mandated:mailbox"
