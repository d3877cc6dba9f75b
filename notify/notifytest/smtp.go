// Package notifytest gives tests real delivery endpoints: an SMTP server
// (plain, STARTTLS or implicit TLS, optionally requiring a password) that
// keeps every message it receives, and an HTTP server that records SMS
// webhook calls. Both listen on 127.0.0.1 on a free port and stop when the
// test ends.
//
//	srv := notifytest.StartSMTP(t)
//	n := notifytest.SMTPNotifier(t, srv)
//	// ... code under test sends a one-time code with n ...
//	got := srv.WaitFor(t, "holder@example.org")
//	// got.Subject, got.Text are decoded (MIME words, quoted-printable, base64)
package notifytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mandated/mandated/notify"
)

// WaitTimeout bounds WaitFor. It is generous on purpose: it is a guard
// against a test hanging forever, not an assertion about speed.
const WaitTimeout = 30 * time.Second

// ReceivedMail is one message as the SMTP server received it.
type ReceivedMail struct {
	From     string      // envelope sender (MAIL FROM)
	To       []string    // envelope recipients (RCPT TO)
	Header   mail.Header // the message's header fields
	Subject  string      // decoded Subject
	Text     string      // decoded text/plain body, CRLF turned into LF (usually ends with "\n")
	Raw      []byte      // the message as received
	TLS      bool        // the session was encrypted (STARTTLS or implicit TLS)
	AuthUser string      // the user name the client authenticated as, if any
}

// SMTPOption configures StartSMTP.
type SMTPOption func(*smtpOptions)

type smtpOptions struct {
	tlsMode  notify.TLSMode
	username string
	password string
}

// WithSTARTTLS makes the server offer STARTTLS with a self-signed
// certificate for 127.0.0.1 and localhost generated for the test; trust it
// with SMTPServer.CAFile or SMTPServer.CertPool.
func WithSTARTTLS() SMTPOption {
	return func(o *smtpOptions) { o.tlsMode = notify.TLSStartTLS }
}

// WithImplicitTLS makes the server speak TLS from the first byte (like port
// 465) with a self-signed certificate generated for the test.
func WithImplicitTLS() SMTPOption {
	return func(o *smtpOptions) { o.tlsMode = notify.TLSImplicit }
}

// WithAuth makes the server require AUTH PLAIN with this user name and
// password before it accepts mail. Authentication is only offered over TLS,
// so combine it with WithSTARTTLS or WithImplicitTLS.
func WithAuth(username, password string) SMTPOption {
	return func(o *smtpOptions) { o.username, o.password = username, password }
}

// SMTPServer is a running SMTP server that keeps what it receives.
type SMTPServer struct {
	opts    smtpOptions
	server  *smtp.Server
	addr    *net.TCPAddr
	certPEM []byte
	pool    *x509.CertPool
	caFile  string

	mu       sync.Mutex
	messages []ReceivedMail
	arrived  chan struct{} // closed and replaced on every new message
}

// StartSMTP starts an SMTP server on 127.0.0.1 on a free port. Without
// options it speaks plain SMTP and accepts mail from anyone to anyone. It
// stops when the test ends.
func StartSMTP(t testing.TB, opts ...SMTPOption) *SMTPServer {
	t.Helper()
	s := &SMTPServer{arrived: make(chan struct{})}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.tlsMode == "" {
		s.opts.tlsMode = notify.TLSNone
	}

	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 50
	logger := &testLogger{t: t}
	srv.ErrorLog = logger

	var tlsConfig *tls.Config
	if s.opts.tlsMode != notify.TLSNone {
		cert, certPEM, err := selfSigned()
		if err != nil {
			t.Fatalf("notifytest: generate certificate: %v", err)
		}
		s.certPEM = certPEM
		s.pool = x509.NewCertPool()
		s.pool.AppendCertsFromPEM(certPEM)
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		srv.TLSConfig = tlsConfig
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("notifytest: listen: %v", err)
	}
	s.addr = ln.Addr().(*net.TCPAddr)
	if s.opts.tlsMode == notify.TLSImplicit {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.server = srv
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("notifytest: SMTP server: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
		logger.stop()
	})
	return s
}

// Addr is the server's host:port.
func (s *SMTPServer) Addr() string { return s.addr.String() }

// Host is the server's IP address, "127.0.0.1".
func (s *SMTPServer) Host() string { return s.addr.IP.String() }

// Port is the server's TCP port.
func (s *SMTPServer) Port() int { return s.addr.Port }

// TLSMode is how the server expects clients to secure the connection:
// notify.TLSNone, notify.TLSStartTLS or notify.TLSImplicit.
func (s *SMTPServer) TLSMode() notify.TLSMode { return s.opts.tlsMode }

// CertPool holds the server's self-signed certificate (nil on a plain server).
func (s *SMTPServer) CertPool() *x509.CertPool { return s.pool }

// CAFile writes the server's certificate to a PEM file in a temporary
// directory and returns its path ("" on a plain server).
func (s *SMTPServer) CAFile(t testing.TB) string {
	t.Helper()
	if s.certPEM == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caFile == "" {
		path := filepath.Join(t.TempDir(), "smtp-ca.pem")
		if err := os.WriteFile(path, s.certPEM, 0o600); err != nil {
			t.Fatalf("notifytest: write CA file: %v", err)
		}
		s.caFile = path
	}
	return s.caFile
}

// Config is a notify.SMTPConfig that reaches this server: right host, port,
// TLS mode, trusted certificate and credentials. Tests may change fields.
func (s *SMTPServer) Config() notify.SMTPConfig {
	return notify.SMTPConfig{
		Host:     s.Host(),
		Port:     s.Port(),
		Username: s.opts.username,
		Password: s.opts.password,
		From:     "mandated@example.org",
		TLS:      s.opts.tlsMode,
		RootCAs:  s.pool,
		Timeout:  WaitTimeout,
	}
}

// Messages returns a copy of every message received so far, oldest first.
func (s *SMTPServer) Messages() []ReceivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ReceivedMail(nil), s.messages...)
}

// WaitFor returns the first message whose envelope recipients include to
// (compared case-insensitively), waiting up to WaitTimeout for it to arrive;
// it fails the test if none does.
func (s *SMTPServer) WaitFor(t testing.TB, to string) ReceivedMail {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, m := range s.messages {
			for _, rcpt := range m.To {
				if strings.EqualFold(rcpt, to) {
					s.mu.Unlock()
					return m
				}
			}
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("notifytest: no message to %s within %s (%d other messages)", to, WaitTimeout, len(s.Messages()))
			return ReceivedMail{}
		}
	}
}

func (s *SMTPServer) add(m ReceivedMail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// SMTPNotifier is a notify.SMTP notifier that sends to srv.
func SMTPNotifier(t testing.TB, srv *SMTPServer) notify.Notifier {
	t.Helper()
	n, err := notify.NewSMTP(srv.Config())
	if err != nil {
		t.Fatalf("notifytest: SMTP notifier: %v", err)
	}
	return n
}

type backend struct{ s *SMTPServer }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: b.s, conn: c, tls: isTLS}, nil
}

type session struct {
	s    *SMTPServer
	conn *smtp.Conn
	tls  bool
	user string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.opts.username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errors.New("identity differs from user name")
		}
		if username != ss.s.opts.username || password != ss.s.opts.password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.username != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !ss.tls {
		_, ss.tls = ss.conn.TLSConnectionState()
	}
	m := ReceivedMail{From: ss.from, To: ss.to, Raw: raw, TLS: ss.tls, AuthUser: ss.user}
	if err := decode(&m); err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "notifytest: " + err.Error()}
	}
	ss.s.add(m)
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// decode fills Header, Subject and Text from Raw.
func decode(m *ReceivedMail) error {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return fmt.Errorf("parse message: %w", err)
	}
	m.Header = msg.Header
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return fmt.Errorf("decode subject: %w", err)
	}
	text, err := textBody(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	if err != nil {
		return err
	}
	m.Text = strings.ReplaceAll(text, "\r\n", "\n")
	return nil
}

// textBody returns the first text/plain part, decoded.
func textBody(contentType, encoding string, body io.Reader) (string, error) {
	mediaType, params := "text/plain", map[string]string{}
	if contentType != "" {
		var err error
		if mediaType, params, err = mime.ParseMediaType(contentType); err != nil {
			return "", fmt.Errorf("content type %q: %w", contentType, err)
		}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return "", errors.New("no text/plain part")
			}
			if err != nil {
				return "", fmt.Errorf("read part: %w", err)
			}
			text, err := textBody(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
			if err == nil {
				return text, nil
			}
		}
	}
	if mediaType != "text/plain" {
		return "", fmt.Errorf("body is %s, not text/plain", mediaType)
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		return "", fmt.Errorf("charset %s, not UTF-8", cs)
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("decode body: %w", err)
	}
	return string(b), nil
}

// newlineStripper drops CR and LF so base64 bodies split in lines decode.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		c, err := n.r.Read(p)
		j := 0
		for _, b := range p[:c] {
			if b != '\r' && b != '\n' {
				p[j] = b
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "notifytest SMTP " + strconv.FormatInt(serial.Int64(), 16)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}

// testLogger sends the server's error log to the test log, until the test
// ends (t.Log panics after that).
type testLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

func (l *testLogger) Printf(format string, v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("notifytest SMTP: "+format, v...)
	}
}

func (l *testLogger) Println(v ...interface{}) {
	l.Printf("%s", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
