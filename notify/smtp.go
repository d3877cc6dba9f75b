package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLSMode is how the SMTP connection is secured.
type TLSMode string

// TLS modes.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS, which
	// the server must offer (no silent fallback to plain text). Default;
	// usually port 587.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, RFC 8314); usually
	// port 465.
	TLSImplicit TLSMode = "tls"
	// TLSNone sends in clear text. Only allowed to a loopback host (a local
	// relay or a development mail catcher).
	TLSNone TLSMode = "none"
)

// ParseTLSMode reads a TLS mode setting; "" is TLSStartTLS.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return TLSStartTLS, nil
	case TLSStartTLS, TLSImplicit, TLSNone:
		return m, nil
	}
	return "", fmt.Errorf("SMTP TLS mode %q: want starttls, tls or none", s)
}

// SMTPConfig configures the SMTP notifier.
type SMTPConfig struct {
	Host     string // required
	Port     int    // default 587 (starttls), 465 (tls) or 25 (none)
	Username string // optional; with it, AUTH PLAIN or LOGIN, only ever over TLS
	Password string
	From     string // the sender address, e.g. "no-reply@example.org"; required
	FromName string // display name of the sender; default "mandated"
	TLS      TLSMode
	// CAFile is a PEM file of certificate authorities to trust instead of
	// the system's (for a relay with a private CA).
	CAFile string
	// RootCAs, when set, is trusted instead of the system's and CAFile's
	// certificate authorities (tests).
	RootCAs *x509.CertPool
	// ServerName is the name expected in the server's certificate; default Host.
	ServerName string
	// Timeout bounds connecting and each exchange; default 30s.
	Timeout time.Duration
	// Now is the clock for the Date header; default time.Now.
	Now func() time.Time
}

// SMTP sends email messages through an SMTP server (a relay or a
// submission service). Each Send opens one connection: codes are rare
// and must not wait on a pooled connection that went stale.
type SMTP struct {
	cfg       SMTPConfig
	from      *mail.Address
	msgDomain string
	tlsConfig *tls.Config
}

// NewSMTP checks the configuration and returns the notifier. It does not
// connect: a mail server that is down at start must not stop the server.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	mode, err := ParseTLSMode(string(cfg.TLS))
	if err != nil {
		return nil, err
	}
	cfg.TLS = mode
	if cfg.Host == "" {
		return nil, errors.New("SMTP: the host is required")
	}
	if cfg.Port == 0 {
		cfg.Port = map[TLSMode]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[mode]
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("SMTP: port %d out of range", cfg.Port)
	}
	if cfg.FromName == "" {
		cfg.FromName = "mandated"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if mode == TLSNone {
		if !isLoopbackHost(cfg.Host) {
			return nil, fmt.Errorf("SMTP: TLS mode none is only allowed to a loopback host, not %q; use starttls or tls", cfg.Host)
		}
		if cfg.Username != "" {
			return nil, errors.New("SMTP: a user name and password are only sent over TLS; use starttls or tls")
		}
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("SMTP: set both the user name and the password, or neither")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil || from.Address == "" {
		return nil, fmt.Errorf("SMTP: the sender address %q is not an email address", cfg.From)
	}
	if from.Name == "" {
		from.Name = cfg.FromName
	}
	s := &SMTP{cfg: cfg, from: from, msgDomain: from.Address[strings.LastIndexByte(from.Address, '@')+1:]}
	if mode != TLSNone {
		s.tlsConfig = &tls.Config{ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
		if s.tlsConfig.ServerName == "" {
			s.tlsConfig.ServerName = cfg.Host
		}
		if cfg.RootCAs == nil && cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("SMTP: read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("SMTP: CA file %s holds no PEM certificate", cfg.CAFile)
			}
			s.tlsConfig.RootCAs = pool
		}
	}
	return s, nil
}

// Describe says where mail goes, without secrets, for the start-up log.
func (s *SMTP) Describe() string {
	auth := "no authentication"
	if s.cfg.Username != "" {
		auth = "authenticated as " + s.cfg.Username
	}
	return fmt.Sprintf("SMTP %s:%d (%s, %s), from %s", s.cfg.Host, s.cfg.Port, s.cfg.TLS, auth, s.from.Address)
}

// Send delivers m, an Email message, to the SMTP server.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if m.Channel != Email {
		return fmt.Errorf("SMTP: %w: %q", ErrNoChannel, m.Channel)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Address == "" {
		return fmt.Errorf("SMTP: the recipient is not an email address: %w", ErrBadRecipient)
	}
	msg, err := s.message(to.Address, m)
	if err != nil {
		return err
	}
	client, err := gomail.NewClient(s.cfg.Host, s.options()...)
	if err != nil {
		return fmt.Errorf("SMTP: client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("SMTP: send to %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}

func (s *SMTP) options() []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithHELO(s.msgDomain),
	}
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(s.tlsConfig))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(s.tlsConfig))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		// PLAIN, else LOGIN (else the strongest the server offers); go-mail
		// refuses PLAIN and LOGIN outside TLS, and we never configure
		// credentials without TLS.
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password))
	}
	return opts
}

func (s *SMTP) message(to string, m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP), gomail.WithNoDefaultUserAgent())
	if err := msg.FromFormat(s.from.Name, s.from.Address); err != nil {
		return nil, fmt.Errorf("SMTP: sender: %w", err)
	}
	if err := msg.To(to); err != nil {
		return nil, fmt.Errorf("SMTP: recipient: %w", ErrBadRecipient)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(s.cfg.Now())
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	msg.SetMessageIDWithValue(id + "@" + s.msgDomain)
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	if m.Language != "" {
		msg.SetGenHeader(gomail.HeaderContentLang, m.Language)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	return msg, nil
}

// ErrBadRecipient: the message's To is not an address of its channel.
var ErrBadRecipient = errors.New("notify: bad recipient address")

func randomID() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random message id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
