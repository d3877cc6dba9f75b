package main

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mandated/mandated/seal"
)

// config is everything the binary reads from flags and the environment.
// Flags win over environment variables; both have the documented defaults.
type config struct {
	Addr          string
	Proxies       string
	Issuer        string
	DatabaseURL   string
	DataDir       string
	SecretKey     string
	SecretKeyFile string
	AutoMigrate   bool
	LogLevel      string
	LogFormat     string
	AccessTTL     time.Duration
	RefreshTTL    time.Duration

	// Settings of each feature, registered and documented in its own file.
	Notify    notifyConfig    // wire_notify.go
	Holders   holdersConfig   // wire_holders.go
	Passkeys  passkeysConfig  // wire_passkeys.go
	Admin     adminConfig     // wire_admin.go
	Retention retentionConfig // wire_retention.go
	Account   accountConfig   // wire_account.go
	Mandates  mandatesConfig  // wire_mandates.go
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// registerCommon adds the flags every subcommand that touches the database needs.
func (c *config) registerCommon(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", envOr("MANDATED_DATABASE_URL", ""), "database: a postgres:// URL, or an SQLite file path (default: an SQLite file in the data directory) [MANDATED_DATABASE_URL]")
	fs.StringVar(&c.DataDir, "data-dir", envOr("MANDATED_DATA_DIR", "./data"), "directory for the embedded database and the generated secret key [MANDATED_DATA_DIR]")
	fs.StringVar(&c.SecretKey, "secret-key", envOr("MANDATED_SECRET_KEY", ""), "32-byte master key (base64 or hex) that encrypts keys at rest [MANDATED_SECRET_KEY]")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", envOr("MANDATED_SECRET_KEY_FILE", ""), "file holding the master key [MANDATED_SECRET_KEY_FILE]")
	fs.StringVar(&c.Issuer, "issuer", envOr("MANDATED_ISSUER", "http://127.0.0.1:8080"), "issuer URL, the public base URL of this server [MANDATED_ISSUER]")
	c.Notify.register(fs)
	fs.BoolVar(&c.AutoMigrate, "migrate", envOr("MANDATED_AUTO_MIGRATE", "true") == "true", "apply pending migrations on start (--migrate=false to skip) [MANDATED_AUTO_MIGRATE]")
	fs.StringVar(&c.LogLevel, "log-level", envOr("MANDATED_LOG_LEVEL", "info"), "debug, info, warn or error [MANDATED_LOG_LEVEL]")
	fs.StringVar(&c.LogFormat, "log-format", envOr("MANDATED_LOG_FORMAT", "text"), "text or json [MANDATED_LOG_FORMAT]")
	fs.DurationVar(&c.AccessTTL, "access-token-ttl", envDuration("MANDATED_ACCESS_TOKEN_TTL", 5*time.Minute), "access token lifetime [MANDATED_ACCESS_TOKEN_TTL]")
	fs.DurationVar(&c.RefreshTTL, "refresh-token-ttl", envDuration("MANDATED_REFRESH_TOKEN_TTL", 24*time.Hour), "refresh token lifetime [MANDATED_REFRESH_TOKEN_TTL]")
}

func (c *config) registerServe(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", envOr("MANDATED_ADDR", "127.0.0.1:8080"), "listen address [MANDATED_ADDR]")
	fs.StringVar(&c.Proxies, "trusted-proxies", envOr("MANDATED_TRUSTED_PROXIES", ""), "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed [MANDATED_TRUSTED_PROXIES]")
	c.Holders.register(fs)
	c.Passkeys.register(fs)
	c.Admin.register(fs)
	c.Retention.register(fs)
	c.Account.register(fs)
	c.Mandates.register(fs)
}

// trustedProxies parses the trusted proxy networks.
func (c *config) trustedProxies() ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, part := range strings.Split(c.Proxies, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %q is not a CIDR (e.g. 10.0.0.0/8)", part)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// isPostgres reports whether the database URL selects PostgreSQL.
func (c *config) isPostgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

// databaseURL returns the configured URL, or the embedded SQLite default.
func (c *config) databaseURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "mandated.db")
}

// validate checks what can be checked before touching anything.
func (c *config) validate() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q must be an absolute http(s) URL without query or fragment", c.Issuer)
	}
	if c.AccessTTL <= 0 || c.AccessTTL > time.Hour {
		return fmt.Errorf("access token lifetime %s must be between 1s and 1h", c.AccessTTL)
	}
	if c.RefreshTTL <= 0 {
		return fmt.Errorf("refresh token lifetime %s must be positive", c.RefreshTTL)
	}
	if err := c.Retention.check(); err != nil {
		return err
	}
	return nil
}

// secrets are the keys derived from the master key.
type secrets struct {
	Sealer *seal.Sealer
	HMAC   []byte // fosite's global HMAC secret (authorization codes, refresh tokens)
	// CodeKey keys the HMAC under which one-time codes are stored, so a
	// stolen database does not give away codes by brute force.
	CodeKey []byte
}

// loadSecrets finds the master key: from --secret-key, from --secret-key-file,
// or — on the embedded SQLite default only — from a key file generated in the
// data directory on first start. PostgreSQL deployments run several replicas,
// which must share one key, so they must configure it.
func (c *config) loadSecrets(logger *slog.Logger) (secrets, error) {
	var master []byte
	switch {
	case c.SecretKey != "":
		k, err := seal.ParseKey(c.SecretKey)
		if err != nil {
			return secrets{}, fmt.Errorf("MANDATED_SECRET_KEY: %w", err)
		}
		master = k
	case c.SecretKeyFile != "":
		data, err := os.ReadFile(c.SecretKeyFile)
		if err != nil {
			return secrets{}, fmt.Errorf("read secret key file: %w", err)
		}
		k, err := seal.ParseKey(string(data))
		if err != nil {
			return secrets{}, fmt.Errorf("secret key file %s: %w", c.SecretKeyFile, err)
		}
		master = k
	case c.isPostgres():
		return secrets{}, errors.New("on PostgreSQL, set MANDATED_SECRET_KEY or MANDATED_SECRET_KEY_FILE (32 bytes, e.g. `openssl rand -base64 32`), the same on every replica")
	default:
		path := filepath.Join(c.DataDir, "secret.key")
		k, created, err := seal.LoadOrCreateKeyFile(path)
		if err != nil {
			return secrets{}, err
		}
		if created {
			logger.Info("generated the master key; back it up with the database", "path", path)
		}
		master = k
	}
	sealKey, err := hkdf.Key(sha256.New, master, nil, "mandated seal v1", seal.KeySize)
	if err != nil {
		return secrets{}, fmt.Errorf("derive sealing key: %w", err)
	}
	hmacKey, err := hkdf.Key(sha256.New, master, nil, "mandated fosite hmac v1", 32)
	if err != nil {
		return secrets{}, fmt.Errorf("derive hmac key: %w", err)
	}
	codeKey, err := hkdf.Key(sha256.New, master, nil, "mandated one-time codes v1", 32)
	if err != nil {
		return secrets{}, fmt.Errorf("derive one-time code key: %w", err)
	}
	sealer, err := seal.New(sealKey)
	if err != nil {
		return secrets{}, err
	}
	return secrets{Sealer: sealer, HMAC: hmacKey, CodeKey: codeKey}, nil
}

func (c *config) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
