package notify

import (
	"context"
	"log/slog"
)

// Log "sends" messages by printing them to the server log at INFO, for
// development and demonstrations without a mail server or SMS gateway. The
// person gets nothing: the log line says so. Never use it in production:
// the log then holds one-time codes and links.
type Log struct {
	Logger *slog.Logger // default slog.Default()
}

// NewLog returns a Log notifier printing to logger.
func NewLog(logger *slog.Logger) *Log { return &Log{Logger: logger} }

// Describe says where messages go, for the start-up log.
func (l *Log) Describe() string { return "the server log (NOT delivered; development only)" }

// Send prints m.
func (l *Log) Send(ctx context.Context, m Message) error {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.InfoContext(ctx, "notification NOT delivered (log notifier, development only): message printed here instead",
		"channel", string(m.Channel), "to", m.To, "subject", m.Subject, "language", m.Language, "text", m.Text)
	return nil
}
