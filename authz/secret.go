package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ory/fosite"
)

// NewClientSecret returns a fresh client secret: 32 random bytes (256 bits),
// base64url without padding.
func NewClientSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// SecretHasher is the fosite.Hasher for client secrets: it stores SHA-256 of
// the secret and compares in constant time.
//
// Why not bcrypt or argon2id: slow hashes exist to make guessing people's
// low-entropy passwords expensive after a database leak. Client secrets are
// 256 random bits that we generate; no amount of guessing finds one, fast
// hash or not, so a slow hash would only burn CPU on every token request
// (it dominates the cost of issuance in servers that use one). Passwords of
// people use argon2id elsewhere.
type SecretHasher struct{}

var _ fosite.Hasher = SecretHasher{}

var errSecretMismatch = errors.New("client secret does not match")

// Hash returns SHA-256 of data.
func (SecretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return sum[:], nil
}

// Compare checks data against hash in constant time. An empty hash (a client
// with no secret) never matches.
func (SecretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) != sha256.Size || len(data) == 0 {
		return errSecretMismatch
	}
	sum := sha256.Sum256(data)
	if subtle.ConstantTimeCompare(hash, sum[:]) != 1 {
		return errSecretMismatch
	}
	return nil
}
