package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mandated/mandated/notify"
)

// notifyConfig holds the notify settings (docs/notifications.md): email
// over SMTP and SMS through a signed webhook. A channel left unconfigured
// falls back to the log notifier, which prints messages to the server log
// instead of delivering them (development only).
type notifyConfig struct {
	SMTPHost         string
	SMTPPort         string
	SMTPUsername     string
	SMTPPassword     string
	SMTPPasswordFile string
	SMTPFrom         string
	SMTPTLS          string
	SMTPCAFile       string
	SMTPServerName   string
	SMTPTimeout      time.Duration

	SMSWebhookURL        string
	SMSWebhookSecret     string
	SMSWebhookSecretFile string
	SMSWebhookTimeout    time.Duration
}

func (c *notifyConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.SMTPHost, "smtp-host", envOr("MANDATED_SMTP_HOST", ""), "SMTP server for email (one-time codes, invitations); empty: emails are printed to the log, not sent [MANDATED_SMTP_HOST]")
	fs.StringVar(&c.SMTPPort, "smtp-port", envOr("MANDATED_SMTP_PORT", ""), "SMTP port (default 587 for starttls, 465 for tls, 25 for none) [MANDATED_SMTP_PORT]")
	fs.StringVar(&c.SMTPUsername, "smtp-username", envOr("MANDATED_SMTP_USERNAME", ""), "SMTP user name (AUTH PLAIN or LOGIN, over TLS only) [MANDATED_SMTP_USERNAME]")
	fs.StringVar(&c.SMTPPassword, "smtp-password", envOr("MANDATED_SMTP_PASSWORD", ""), "SMTP password; prefer --smtp-password-file [MANDATED_SMTP_PASSWORD]")
	fs.StringVar(&c.SMTPPasswordFile, "smtp-password-file", envOr("MANDATED_SMTP_PASSWORD_FILE", ""), "file holding the SMTP password [MANDATED_SMTP_PASSWORD_FILE]")
	fs.StringVar(&c.SMTPFrom, "smtp-from", envOr("MANDATED_SMTP_FROM", ""), `sender address, e.g. no-reply@example.org or "Médiation <no-reply@example.org>" (display name default "mandated") [MANDATED_SMTP_FROM]`)
	fs.StringVar(&c.SMTPTLS, "smtp-tls", envOr("MANDATED_SMTP_TLS", "starttls"), "starttls (required, never falls back to plain text), tls (implicit, port 465) or none (loopback host only) [MANDATED_SMTP_TLS]")
	fs.StringVar(&c.SMTPCAFile, "smtp-ca-file", envOr("MANDATED_SMTP_CA_FILE", ""), "PEM file of certificate authorities to trust for the SMTP server instead of the system's [MANDATED_SMTP_CA_FILE]")
	fs.StringVar(&c.SMTPServerName, "smtp-server-name", envOr("MANDATED_SMTP_SERVER_NAME", ""), "name expected in the SMTP server's certificate (default: the host) [MANDATED_SMTP_SERVER_NAME]")
	fs.DurationVar(&c.SMTPTimeout, "smtp-timeout", envDuration("MANDATED_SMTP_TIMEOUT", 30*time.Second), "SMTP connection and command timeout [MANDATED_SMTP_TIMEOUT]")
	fs.StringVar(&c.SMSWebhookURL, "sms-webhook-url", envOr("MANDATED_SMS_WEBHOOK_URL", ""), "HTTPS URL that receives SMS to send as signed JSON (docs/notifications.md); empty: SMS are printed to the log, not sent [MANDATED_SMS_WEBHOOK_URL]")
	fs.StringVar(&c.SMSWebhookSecret, "sms-webhook-secret", envOr("MANDATED_SMS_WEBHOOK_SECRET", ""), "webhook signing secret, whsec_ followed by base64 of 24-64 random bytes; prefer --sms-webhook-secret-file [MANDATED_SMS_WEBHOOK_SECRET]")
	fs.StringVar(&c.SMSWebhookSecretFile, "sms-webhook-secret-file", envOr("MANDATED_SMS_WEBHOOK_SECRET_FILE", ""), "file holding the webhook signing secret [MANDATED_SMS_WEBHOOK_SECRET_FILE]")
	fs.DurationVar(&c.SMSWebhookTimeout, "sms-webhook-timeout", envDuration("MANDATED_SMS_WEBHOOK_TIMEOUT", 10*time.Second), "timeout of each SMS webhook call [MANDATED_SMS_WEBHOOK_TIMEOUT]")
}

// open builds the notifier the settings describe: a router sending email
// through SMTP and SMS through the webhook when they are configured, and to
// the log otherwise. It logs which delivery is in use, without secrets.
func (c *notifyConfig) open(logger *slog.Logger) (notify.Notifier, error) {
	email, err := c.openEmail(logger)
	if err != nil {
		return nil, err
	}
	sms, err := c.openSMS(logger)
	if err != nil {
		return nil, err
	}
	r := notify.Router{notify.Email: email, notify.SMS: sms}
	d := r.Describe()
	_, emailLogged := email.(*notify.Log)
	_, smsLogged := sms.(*notify.Log)
	if emailLogged || smsLogged {
		logger.Warn("notifications: messages of an unconfigured channel are printed to this log, NOT delivered (development only; see docs/notifications.md)",
			"email", d[notify.Email], "sms", d[notify.SMS])
	} else {
		logger.Info("notifications", "email", d[notify.Email], "sms", d[notify.SMS])
	}
	return r, nil
}

func (c *notifyConfig) openEmail(logger *slog.Logger) (notify.Notifier, error) {
	mode, err := notify.ParseTLSMode(c.SMTPTLS)
	if err != nil {
		return nil, fmt.Errorf("--smtp-tls: %w", err)
	}
	password, err := secretSetting(c.SMTPPassword, c.SMTPPasswordFile, "--smtp-password")
	if err != nil {
		return nil, err
	}
	if c.SMTPHost == "" {
		if c.SMTPUsername != "" || password != "" || c.SMTPFrom != "" || c.SMTPCAFile != "" || c.SMTPPort != "" {
			return nil, errors.New("SMTP settings are given but --smtp-host [MANDATED_SMTP_HOST] is empty")
		}
		return notify.NewLog(logger), nil
	}
	if c.SMTPFrom == "" {
		return nil, errors.New("--smtp-from [MANDATED_SMTP_FROM] is required with --smtp-host")
	}
	port := 0
	if c.SMTPPort != "" {
		if port, err = strconv.Atoi(c.SMTPPort); err != nil {
			return nil, fmt.Errorf("--smtp-port: %q is not a port number", c.SMTPPort)
		}
	}
	n, err := notify.NewSMTP(notify.SMTPConfig{
		Host:       c.SMTPHost,
		Port:       port,
		Username:   c.SMTPUsername,
		Password:   password,
		From:       c.SMTPFrom,
		TLS:        mode,
		CAFile:     c.SMTPCAFile,
		ServerName: c.SMTPServerName,
		Timeout:    c.SMTPTimeout,
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (c *notifyConfig) openSMS(logger *slog.Logger) (notify.Notifier, error) {
	secret, err := secretSetting(c.SMSWebhookSecret, c.SMSWebhookSecretFile, "--sms-webhook-secret")
	if err != nil {
		return nil, err
	}
	if c.SMSWebhookURL == "" {
		if secret != "" {
			return nil, errors.New("an SMS webhook secret is given but --sms-webhook-url [MANDATED_SMS_WEBHOOK_URL] is empty")
		}
		return notify.NewLog(logger), nil
	}
	n, err := notify.NewWebhook(notify.WebhookConfig{
		URL:     c.SMSWebhookURL,
		Secret:  secret,
		Timeout: c.SMSWebhookTimeout,
		Logger:  logger,
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// secretSetting returns a secret given directly or in a file (not both),
// without the file's trailing newline.
func secretSetting(value, file, flagName string) (string, error) {
	if value != "" && file != "" {
		return "", fmt.Errorf("set %s or %s-file, not both", flagName, flagName)
	}
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s-file: %w", flagName, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s-file %s is empty", flagName, file)
	}
	return s, nil
}
