package authz

import (
	"context"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// ReceiptJWSType is the typ header of a signed consent receipt (RFC 8725
// §3.11 explicit typing): a resource server that checks typ at+jwt never
// takes a receipt for an access token.
const ReceiptJWSType = "consent-receipt+jwt"

// SignReceipt signs a consent receipt: a compact JWS (RFC 7515), ES256
// under the current signing key (its kid in the header, typ
// ReceiptJWSType), whose payload is canonical exactly — the bytes stored at
// approval (mandate.Receipt.Canonical), not a re-encoding — so anyone can
// check it against the keys published at PathJWKS and read the receipt
// back from it. ES256 signatures are randomised: each call gives another
// JWS over the same bytes. A receipt's lasting proof is its hash in the
// audit log; a signature verifies only while its key is published (until
// the key is rotated, and a few minutes more).
func (s *Server) SignReceipt(ctx context.Context, canonical []byte) (string, error) {
	if len(canonical) == 0 {
		return "", errors.New("sign receipt: no receipt")
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("sign receipt: %w", err)
	}
	s.keys.mu.RLock()
	current := s.keys.current
	s.keys.mu.RUnlock()
	if current == nil {
		return "", errors.New("sign receipt: no active signing key")
	}
	// The key's own signer says typ at+jwt; a receipt gets a signer of its own.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: current.key},
		(&jose.SignerOptions{}).WithType(ReceiptJWSType))
	if err != nil {
		return "", fmt.Errorf("sign receipt with key %s: %w", current.kid, err)
	}
	jws, err := signer.Sign(canonical)
	if err != nil {
		return "", fmt.Errorf("sign receipt with key %s: %w", current.kid, err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign receipt: serialise: %w", err)
	}
	return out, nil
}
