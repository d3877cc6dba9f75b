package authz

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/handler/rfc7523"
	fositestorage "github.com/ory/fosite/storage"
)

// Storage is everything the authorization server persists. The gorm adapter in
// store/ implements it for SQLite and PostgreSQL; store's conformance suite
// checks every method on both.
//
// Token records (authorization codes, PKCE sessions, access and refresh
// tokens) are keyed by the token's signature, never the token itself. The
// request ID is stable across refresh-token rotation: it names the grant
// ("family"), and revoking by request ID ends the whole family.
type Storage interface {
	fosite.ClientManager // GetClient, ClientAssertionJWTValid, SetClientAssertionJWT
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	rfc7523.RFC7523KeyStorage
	fositestorage.Transactional

	ClientStore
	KeyStore
	ConsentStore
	GrantStore
	TrustStore
}

// ClientStore manages client registrations. GetClient (from fosite) returns
// fosite.ErrNotFound for an unknown client.
type ClientStore interface {
	// CreateClient stores a new client; mandate.ErrAlreadyExists if the ID is taken.
	CreateClient(ctx context.Context, c *Client) error
	// ListClients returns every client ordered by creation time.
	ListClients(ctx context.Context) ([]*Client, error)
	// DeleteClient removes a client and every token, code and consent issued to it;
	// mandate.ErrNotFound if there is no such client.
	DeleteClient(ctx context.Context, id string) error
}

// SigningKey is one token-signing key pair. The private part is sealed (see
// package seal) before it reaches the store.
type SigningKey struct {
	KID           string
	Algorithm     string // "ES256" or "EdDSA"
	PublicJWK     []byte // the public key as a JWK (JSON)
	SealedPrivate []byte // the private key as a JWK (JSON), sealed
	CreatedAt     time.Time
	// RetiredAt is set when a newer key takes over signing. A retired key stays
	// in the JWKS until RetiredAt plus the longest access-token lifetime.
	RetiredAt *time.Time
}

// KeyStore holds signing keys.
type KeyStore interface {
	// CreateSigningKey stores k and, in the same transaction, sets RetiredAt=k.CreatedAt
	// on every key that is not yet retired.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns all keys, newest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// DeleteSigningKeysRetiredBefore removes retired keys with RetiredAt < t and
	// returns how many were removed.
	DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) (int, error)
}

// Consent is what a signed-in person allowed a client: remembered so the next
// request for the same or fewer scopes needs no new click, until withdrawn.
type Consent struct {
	Subject   string // the signed-in person's subject identifier
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
}

// ConsentStore remembers consents, one per (subject, client).
type ConsentStore interface {
	// SaveConsent creates or replaces the consent for (Subject, ClientID).
	SaveConsent(ctx context.Context, c Consent) error
	// GetConsent returns mandate.ErrNotFound when there is none.
	GetConsent(ctx context.Context, subject, clientID string) (Consent, error)
	// ListConsents returns a person's consents, newest first.
	ListConsents(ctx context.Context, subject string) ([]Consent, error)
	// DeleteConsent withdraws a consent; mandate.ErrNotFound when there is none.
	DeleteConsent(ctx context.Context, subject, clientID string) error
}

// GrantStore answers questions across token records that fosite's interfaces do not.
type GrantStore interface {
	// RevokeGrantsOf makes every access token, refresh token and unused
	// authorization code issued to clientID for subject inactive, and returns the
	// request IDs it touched (so caches can be told).
	RevokeGrantsOf(ctx context.Context, subject, clientID string) ([]string, error)
	// DeleteExpired removes token records, codes, PKCE sessions and used JWT IDs
	// that expired before t; returns how many rows went.
	DeleteExpired(ctx context.Context, t time.Time) (int, error)
}

// Trust is an RFC 7523 §2.1 trust relationship: JWTs from Issuer about Subject
// (any subject when AllowAnySubject), signed by the key PublicJWK, may be
// exchanged for access tokens with at most Scopes. fosite's
// rfc7523.RFC7523KeyStorage methods read these.
type Trust struct {
	ID              string
	Issuer          string
	Subject         string
	AllowAnySubject bool
	KeyID           string
	PublicJWK       []byte // JSON JWK, public part only
	Scopes          []string
	ExpiresAt       time.Time
	CreatedAt       time.Time
}

// TrustStore manages RFC 7523 trust relationships.
type TrustStore interface {
	// CreateTrust stores t; mandate.ErrAlreadyExists for the same (Issuer, Subject, KeyID).
	CreateTrust(ctx context.Context, t Trust) error
	ListTrusts(ctx context.Context) ([]Trust, error)
	// DeleteTrust: mandate.ErrNotFound when there is none.
	DeleteTrust(ctx context.Context, id string) error
}
