// Package notify delivers short messages to people: one-time codes, staff
// invitations and password-reset links. Notifier is the one interface the
// domain uses; the implementations are email over SMTP, SMS through an HTTP
// webhook (docs/notifications.md documents its JSON contract) and a log
// notifier for development that prints messages to the server log. Router
// sends each message to the notifier of its channel.
package notify

import (
	"context"
	"errors"
)

// Channel is how a message travels.
type Channel string

// Channels.
const (
	Email Channel = "email"
	SMS   Channel = "sms"
)

// Message is one message to one person. Text is plain text, already in the
// person's language; Subject is used by email only.
type Message struct {
	Channel  Channel
	To       string // an email address, or an E.164 phone number
	Subject  string
	Text     string
	Language string // "fr" or "en"
}

// Notifier sends messages. Send returns once the message was handed to the
// next hop (SMTP server, SMS gateway, log) or with an error: the caller then
// knows the person did not get it.
type Notifier interface {
	Send(ctx context.Context, m Message) error
}

// ErrNoChannel: no notifier is configured for the message's channel.
var ErrNoChannel = errors.New("notify: no notifier for this channel")
