package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
)

// KeyManagerConfig configures a KeyManager.
type KeyManagerConfig struct {
	Store  KeyStore
	Sealer *seal.Sealer
	Clock  mandate.Clock // system clock when nil
	Logger *slog.Logger  // slog.Default() when nil
	// Recorder records key creation and rotation (NopRecorder when nil; the
	// binary always gives the audit log).
	Recorder Recorder
	// MaxAccessTokenLifetime is the longest lifetime of a token a key signs: a
	// retired key stays published that long (plus ReloadInterval and a margin).
	MaxAccessTokenLifetime time.Duration
	// ReloadInterval is how often Run reloads keys from the store; 30 s when zero.
	ReloadInterval time.Duration
}

// reloadMargin covers clock skew between replicas on top of the reload interval.
const reloadMargin = 30 * time.Second

// minUnknownKidReload bounds how often an unknown kid may trigger a reload,
// so tokens with made-up kids cannot drive load on the store.
const minUnknownKidReload = 5 * time.Second

// KeyManager holds the token-signing keys: the current ES256 signer and the
// public keys still published in the JWKS. Every replica runs one; keys live
// in the store (private parts sealed), so replicas converge on Reload.
type KeyManager struct {
	cfg   KeyManagerConfig
	clock mandate.Clock
	log   *slog.Logger

	reloadMu   sync.Mutex // serialises Reload
	mu         sync.RWMutex
	current    *signingKey
	keys       []publicKey // newest first
	lastReload time.Time
}

type signingKey struct {
	kid    string
	key    jose.JSONWebKey // private
	signer jose.Signer
}

type publicKey struct {
	kid       string
	jwk       jose.JSONWebKey
	raw       json.RawMessage
	retiredAt *time.Time
}

// NewKeyManager loads the signing keys and creates the first one when the
// store has none.
func NewKeyManager(ctx context.Context, cfg KeyManagerConfig) (*KeyManager, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("key manager: store and sealer are required")
	}
	if cfg.MaxAccessTokenLifetime <= 0 {
		cfg.MaxAccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = 30 * time.Second
	}
	km := &KeyManager{cfg: cfg, clock: cfg.Clock, log: cfg.Logger}
	if km.clock == nil {
		km.clock = mandate.SystemClock{}
	}
	if km.log == nil {
		km.log = slog.Default()
	}
	if km.cfg.Recorder == nil {
		km.cfg.Recorder = NopRecorder{}
	}
	if err := km.Reload(ctx); err != nil {
		return nil, err
	}
	km.mu.RLock()
	none := km.current == nil
	km.mu.RUnlock()
	if none {
		if err := km.rotate(ctx, audit.Actor{Kind: audit.ActorSystem}, "first signing key"); err != nil {
			return nil, fmt.Errorf("create first signing key: %w", err)
		}
	}
	return km, nil
}

// Rotate creates a new signing key; the store retires the older ones, which
// stay in the JWKS until every token they signed has expired.
// The operator (CLI) is recorded as the actor.
func (km *KeyManager) Rotate(ctx context.Context) error {
	return km.rotate(ctx, operator, "rotation")
}

func (km *KeyManager) rotate(ctx context.Context, actor audit.Actor, reason string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	kidBytes := make([]byte, 16)
	if _, err := rand.Read(kidBytes); err != nil {
		return fmt.Errorf("generate kid: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(kidBytes)
	privJWK := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
	privJSON, err := privJWK.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	pubJSON, err := privJWK.Public().MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	sealed, err := km.cfg.Sealer.Seal(privJSON, sealPurpose(kid))
	if err != nil {
		return fmt.Errorf("seal signing key: %w", err)
	}
	k := SigningKey{KID: kid, Algorithm: string(jose.ES256), PublicJWK: pubJSON, SealedPrivate: sealed, CreatedAt: km.clock.Now()}
	// Recorded before the key exists: if the record fails, no new key.
	ev := audit.Event{Actor: actor, Action: audit.ActionKeyRotated, Target: "kid " + kid, Outcome: audit.OutcomeSuccess, Reason: reason}
	if _, err := km.cfg.Recorder.Record(ctx, ev); err != nil {
		return fmt.Errorf("record signing key %s: %w", kid, err)
	}
	if err := km.cfg.Store.CreateSigningKey(ctx, k); err != nil {
		ev.Outcome, ev.Reason = audit.OutcomeError, reason+": storing the key failed"
		if _, rerr := km.cfg.Recorder.Record(ctx, ev); rerr != nil {
			km.log.ErrorContext(ctx, "record failed signing key creation", "kid", kid, "err", rerr)
		}
		return fmt.Errorf("store signing key %s: %w", kid, err)
	}
	km.log.InfoContext(ctx, "signing key created", "kid", kid)
	return km.Reload(ctx)
}

func sealPurpose(kid string) string { return "signing-key:" + kid }

// Reload reads the keys from the store: the newest unretired key signs, and
// keys retired too long ago are pruned.
func (km *KeyManager) Reload(ctx context.Context) error {
	km.reloadMu.Lock()
	defer km.reloadMu.Unlock()
	now := km.clock.Now()
	if _, err := km.cfg.Store.DeleteSigningKeysRetiredBefore(ctx, now.Add(-km.keepRetired())); err != nil {
		return fmt.Errorf("prune signing keys: %w", err)
	}
	stored, err := km.cfg.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	var current *signingKey
	keys := make([]publicKey, 0, len(stored))
	km.mu.RLock()
	prev := km.current
	km.mu.RUnlock()
	for _, sk := range stored {
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON(sk.PublicJWK); err != nil {
			return fmt.Errorf("signing key %s: parse public key: %w", sk.KID, err)
		}
		keys = append(keys, publicKey{kid: sk.KID, jwk: pub, raw: sk.PublicJWK, retiredAt: sk.RetiredAt})
		if current != nil || sk.RetiredAt != nil {
			continue
		}
		if prev != nil && prev.kid == sk.KID {
			current = prev
			continue
		}
		if current, err = km.openSigner(sk); err != nil {
			return err
		}
	}
	km.mu.Lock()
	km.current, km.keys, km.lastReload = current, keys, now
	km.mu.Unlock()
	return nil
}

func (km *KeyManager) openSigner(sk SigningKey) (*signingKey, error) {
	if sk.Algorithm != string(jose.ES256) {
		return nil, fmt.Errorf("signing key %s: unsupported algorithm %q", sk.KID, sk.Algorithm)
	}
	plain, err := km.cfg.Sealer.Open(sk.SealedPrivate, sealPurpose(sk.KID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.KID, err)
	}
	var priv jose.JSONWebKey
	if err := priv.UnmarshalJSON(plain); err != nil {
		return nil, fmt.Errorf("signing key %s: parse private key: %w", sk.KID, err)
	}
	if _, ok := priv.Key.(*ecdsa.PrivateKey); !ok || priv.KeyID != sk.KID {
		return nil, fmt.Errorf("signing key %s: not an ECDSA private key for this kid", sk.KID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: signer: %w", sk.KID, err)
	}
	return &signingKey{kid: sk.KID, key: priv, signer: signer}, nil
}

// keepRetired is how long a retired key stays published.
func (km *KeyManager) keepRetired() time.Duration {
	return km.cfg.MaxAccessTokenLifetime + km.cfg.ReloadInterval + reloadMargin
}

func (km *KeyManager) published(k publicKey, now time.Time) bool {
	return k.retiredAt == nil || k.retiredAt.Add(km.keepRetired()).After(now)
}

// Signer returns the current signer (its JWS header carries kid and typ at+jwt).
func (km *KeyManager) Signer() (jose.Signer, string, error) {
	km.mu.RLock()
	defer km.mu.RUnlock()
	if km.current == nil {
		return nil, "", errors.New("no active signing key")
	}
	return km.current.signer, km.current.kid, nil
}

// JWKS returns the published public keys as a JWK Set (RFC 7517) in JSON.
func (km *KeyManager) JWKS() []byte {
	now := km.clock.Now()
	km.mu.RLock()
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: make([]json.RawMessage, 0, len(km.keys))}
	for _, k := range km.keys {
		if km.published(k, now) {
			set.Keys = append(set.Keys, k.raw)
		}
	}
	km.mu.RUnlock()
	out, _ := json.Marshal(set) // raw messages from the store are valid JSON
	return out
}

// VerificationKey returns the public key named kid if it is still published.
// An unknown kid triggers a reload (at most every few seconds): another
// replica may have rotated.
func (km *KeyManager) VerificationKey(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	if k, ok := km.lookup(kid); ok {
		return k, nil
	}
	km.mu.RLock()
	stale := km.clock.Now().Sub(km.lastReload) >= minUnknownKidReload
	km.mu.RUnlock()
	if stale {
		if err := km.Reload(ctx); err != nil {
			km.log.WarnContext(ctx, "reload signing keys", "err", err)
		}
		if k, ok := km.lookup(kid); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown signing key %q", kid)
}

func (km *KeyManager) lookup(kid string) (*ecdsa.PublicKey, bool) {
	now := km.clock.Now()
	km.mu.RLock()
	defer km.mu.RUnlock()
	for _, k := range km.keys {
		if k.kid == kid && km.published(k, now) {
			pub, ok := k.jwk.Key.(*ecdsa.PublicKey)
			return pub, ok
		}
	}
	return nil, false
}

// Run reloads the keys every ReloadInterval until ctx ends.
func (km *KeyManager) Run(ctx context.Context) {
	t := time.NewTicker(km.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := km.Reload(ctx); err != nil && ctx.Err() == nil {
				km.log.WarnContext(ctx, "reload signing keys", "err", err)
			}
		}
	}
}
