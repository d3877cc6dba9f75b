package authz

import jose "github.com/go-jose/go-jose/v4"

// SignerWithType signs with the current key but another JWS typ (tests only).
func SignerWithType(km *KeyManager, typ jose.ContentType) (jose.Signer, error) {
	km.mu.RLock()
	defer km.mu.RUnlock()
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: km.current.key}, (&jose.SignerOptions{}).WithType(typ))
}
