package authz_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/store/storetest"
)

// fetchJWKS reads the key set the server publishes, over HTTP, as a
// verifier would.
func fetchJWKS(t *testing.T, url string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	return set
}

// verifyReceipt checks a compact JWS against a key set the way
// docs/mandates.md tells an auditor to: ES256 only, the key named by kid,
// typ consent-receipt+jwt. It returns the payload.
func verifyReceipt(compact string, set jose.JSONWebKeySet) ([]byte, error) {
	jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != authz.ReceiptJWSType {
		return nil, &receiptError{"typ " + typ}
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return nil, &receiptError{"no published key " + h.KeyID}
	}
	return jws.Verify(keys[0])
}

type receiptError struct{ s string }

func (e *receiptError) Error() string { return e.s }

// TestSignedReceiptVerifiesWithTheJWKSAndOnlyAsIs: the signed receipt is a
// compact JWS whose payload is exactly the stored canonical bytes; it
// verifies with the published keys, and not once one byte of the receipt
// changed. After a rotation new receipts name the new key, older ones still
// verify while their key is published, and no more once it is gone.
func TestSignedReceiptVerifiesWithTheJWKSAndOnlyAsIs(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	km := newKeys(t, st, clk)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	srv, err := authz.New(authz.Config{Issuer: "https://id.example.org", HMACSecret: secret}, st, km, authz.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(srv.JWKS))
	t.Cleanup(ts.Close)

	m := mandate.Mandate{ID: "m-1", Kind: mandate.KindDelegation, StructureID: "mairie", HolderID: "h-1", DelegateID: "s-1",
		Mailbox: "jeanne.martin@mail.example", Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend},
		Exclusions: []string{mandate.ExcludePersonal}, Purpose: "Congés d'été — « dossier »", PurposeCategory: mandate.PurposeAbsence,
		Presence: mandate.PresenceRequired, NotBefore: clk.Now(), NotAfter: clk.Now().Add(72 * time.Hour)}
	canonical := mandate.NewReceipt(m, mandate.Person{ID: "h-1", DisplayName: "Jeanne Martin"},
		mandate.Person{ID: "s-1", DisplayName: "Paul Médiateur"}, "Mairie de Lyon", mandate.DefaultConsentVersion, clk.Now()).Canonical()

	compact, err := srv.SignReceipt(ctx, canonical)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", compact)
	}
	// The payload is the stored bytes themselves, base64url without padding.
	if parts[1] != base64.RawURLEncoding.EncodeToString(canonical) {
		t.Errorf("payload %q is not the canonical bytes", parts[1])
	}
	var header map[string]any
	if raw, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(raw, &header) != nil {
		t.Fatalf("header %q", parts[0])
	}
	_, kid, _ := km.Signer()
	if header["alg"] != "ES256" || header["typ"] != authz.ReceiptJWSType || header["kid"] != kid {
		t.Errorf("header = %v, want ES256, %s, kid %s", header, authz.ReceiptJWSType, kid)
	}

	set := fetchJWKS(t, ts.URL)
	payload, err := verifyReceipt(compact, set)
	if err != nil {
		t.Fatalf("a fresh receipt does not verify: %v", err)
	}
	if !bytes.Equal(payload, canonical) {
		t.Fatalf("verified payload %s\nwant %s", payload, canonical)
	}

	// One changed byte anywhere in the receipt: the signature fails.
	for _, i := range []int{0, len(canonical) / 2, len(canonical) - 1, bytes.Index(canonical, []byte("Jeanne"))} {
		changed := bytes.Clone(canonical)
		changed[i] ^= 0x01
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(changed) + "." + parts[2]
		if _, err := verifyReceipt(forged, set); err == nil {
			t.Errorf("a receipt with byte %d changed verifies", i)
		}
	}
	// Nor does a changed byte of the signature.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 0x80
	if _, err := verifyReceipt(parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig), set); err == nil {
		t.Error("a receipt with a changed signature verifies")
	}

	// A rotation: the next receipt names the new key; the older one still
	// verifies while its key is published, and no more after.
	if err := km.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := srv.SignReceipt(ctx, canonical)
	if err != nil {
		t.Fatal(err)
	}
	set = fetchJWKS(t, ts.URL)
	for name, c := range map[string]string{"new": next, "older": compact} {
		if p, err := verifyReceipt(c, set); err != nil || !bytes.Equal(p, canonical) {
			t.Errorf("%s receipt after a rotation: %v", name, err)
		}
	}
	if jws, _ := jose.ParseSigned(next, []jose.SignatureAlgorithm{jose.ES256}); jws.Signatures[0].Header.KeyID == kid {
		t.Error("the receipt signed after a rotation names the retired key")
	}
	clk.Advance(time.Hour) // well past the retired key's publication
	if _, err := verifyReceipt(compact, fetchJWKS(t, ts.URL)); err == nil {
		t.Error("a receipt signed by a key no longer published verifies")
	}

	if _, err := srv.SignReceipt(ctx, nil); err == nil {
		t.Error("an empty receipt was signed")
	}
}
