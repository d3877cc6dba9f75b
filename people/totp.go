package people

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP settings: RFC 6238 defaults that every authenticator app reads.
const (
	totpIssuer = "mandated"
	totpPeriod = 30
	totpSkew   = 1 // steps accepted either side of now
	qrSize     = 256
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPKey is a second-factor secret as shown on the enrolment page.
type TOTPKey struct {
	Secret    string // base32, for typing in by hand
	URL       string // otpauth://totp/...
	QRDataURI string // data:image/png;base64,... of URL
}

// newTOTPSecret returns a fresh random base32 secret.
func newTOTPSecret(account string) (string, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: account, Period: totpPeriod})
	if err != nil {
		return "", fmt.Errorf("generate totp secret: %w", err)
	}
	return key.Secret(), nil
}

// totpKey describes secret for account with its otpauth URL and QR code.
func totpKey(account, secret string) (TOTPKey, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return TOTPKey{}, fmt.Errorf("decode totp secret: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: account, Period: totpPeriod, Secret: raw})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("totp key: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return TOTPKey{}, fmt.Errorf("totp qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return TOTPKey{}, fmt.Errorf("totp qr png: %w", err)
	}
	return TOTPKey{
		Secret:    key.Secret(),
		URL:       key.URL(),
		QRDataURI: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
	}, nil
}

// validateTOTP checks code against secret at now, accepting one step either
// side, and only steps after lastStep (the last one accepted), so a code is
// never accepted twice. It returns the accepted step.
func validateTOTP(secret, code string, now time.Time, lastStep int64) (int64, error) {
	code = strings.Join(strings.Fields(code), "")
	if len(code) != otp.DigitsSix.Length() {
		return 0, ErrInvalidCode
	}
	current := now.Unix() / totpPeriod
	for step := current - totpSkew; step <= current+totpSkew; step++ {
		if step <= lastStep {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, fmt.Errorf("totp code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, nil
		}
	}
	return 0, ErrInvalidCode
}

// totpPurpose is the seal purpose of a staff account's TOTP secret.
func totpPurpose(staffID string) string { return "totp:" + staffID }
