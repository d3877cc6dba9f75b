package people

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // Paris time in notices, whatever the host has

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// AccessNotice is what a holder is told when a colleague gets access to
// their mailbox under a delegation (docs/mandates.md, "Notices to the
// holder").
type AccessNotice struct {
	HolderID  string
	Colleague string // the colleague's name; "" when unknown
	Structure string // the colleague's structure's name; "" when unknown
	Mailbox   string // the mailbox reached; the holder's when ""
	At        time.Time
	// Link is the absolute URL of the holder's mandates page, where they
	// see the accesses and stop the delegation.
	Link string
}

// ErrNoContactForNotice: the holder has neither phone nor email.
var ErrNoContactForNotice = errors.New("the holder has no phone or email to send a notice to")

// NotifyAccess tells a holder, on their own contact, that a colleague got
// access to their mailbox: who, from which structure, which mailbox, when
// (Paris time), and the link to their mandates. It goes by the channels of
// HoldersConfig.Channels the holder has a contact for, in that order (as
// one-time codes), the next one when a delivery fails; in the holder's
// language. It records nothing: the access it tells of is in the audit log
// already. ErrNoContactForNotice when the holder has no contact;
// notify.ErrNoChannel when no notifier is configured; otherwise the
// delivery errors of every channel tried.
func (h *Holders) NotifyAccess(ctx context.Context, n AccessNotice) error {
	holder, err := h.store.GetHolder(ctx, n.HolderID)
	if err != nil {
		return fmt.Errorf("access notice: %w", err)
	}
	channels := h.channels(holder)
	if len(channels) == 0 {
		return ErrNoContactForNotice
	}
	if h.cfg.Notifier == nil {
		return fmt.Errorf("access notice: %w", notify.ErrNoChannel)
	}
	if n.Mailbox == "" {
		n.Mailbox = holder.Mailbox
	}
	m := accessNoticeMessage(holder.Language, n)
	var errs []error
	for _, ch := range channels {
		m.Channel, m.To = ch, holder.Email
		if ch == notify.SMS {
			m.To = holder.Phone
		}
		err := h.cfg.Notifier.Send(ctx, m)
		if err == nil {
			h.log.InfoContext(ctx, "access notice sent", "holder_id", holder.ID, "channel", ch)
			return nil
		}
		h.log.WarnContext(ctx, "access notice not delivered", "holder_id", holder.ID, "channel", ch, "err", err)
		errs = append(errs, fmt.Errorf("by %s: %w", ch, err))
	}
	return fmt.Errorf("access notice to holder %s: %w", holder.ID, errors.Join(errs...))
}

// accessNoticeMessage is the text of an access notice in lang ("en", or
// French for anything else), short: it may go by SMS.
func accessNoticeMessage(lang string, n AccessNotice) notify.Message {
	at := n.At
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		at = at.In(loc)
	}
	if lang == "en" {
		who := n.Colleague
		switch {
		case who == "" && n.Structure != "":
			who = "Someone from " + n.Structure
		case who == "":
			who = "A colleague"
		case n.Structure != "":
			who += " (" + n.Structure + ")"
		}
		return notify.Message{Language: "en", Subject: "Access to your mailbox", Text: fmt.Sprintf(
			"mandated: %s accessed your mailbox %s on %s at %s (Paris time), under your delegation.\n"+
				"To see or stop this delegation: %s",
			who, n.Mailbox, at.Format("2 January 2006"), at.Format("15:04"), n.Link)}
	}
	who := n.Colleague
	switch {
	case who == "" && n.Structure != "":
		who = "Une personne de " + n.Structure
	case who == "":
		who = "Une personne de l'équipe"
	case n.Structure != "":
		who += " (" + n.Structure + ")"
	}
	return notify.Message{Language: "fr", Subject: "Accès à votre boîte mail", Text: fmt.Sprintf(
		"mandated : %s a accédé à votre boîte mail %s le %d %s %d à %s, grâce à votre délégation.\n"+
			"Pour voir ou arrêter cette délégation : %s",
		who, n.Mailbox, at.Day(), monthsFR[at.Month()-1], at.Year(), at.Format("15:04"), n.Link)}
}

// NoticeLimiter lets at most one notice per key (a mandate) through per
// interval, in this process, by the clock it is given. It keeps only the
// time of the last notice of each key, forgotten once older than the
// interval. Several processes do not share it: each may let one through
// (docs/mandates.md says so).
type NoticeLimiter struct {
	every time.Duration
	clock mandate.Clock

	mu        sync.Mutex
	last      map[string]time.Time
	lastPrune time.Time
}

// NewNoticeLimiter returns a limiter of one notice per key per every.
func NewNoticeLimiter(every time.Duration, clock mandate.Clock) *NoticeLimiter {
	if clock == nil {
		clock = mandate.SystemClock{}
	}
	return &NoticeLimiter{every: every, clock: clock, last: map[string]time.Time{}}
}

// Allow reports whether a notice for key may go now; if so, it counts as
// sent from now on.
func (l *NoticeLimiter) Allow(key string) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastPrune) >= l.every {
		for k, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, k)
			}
		}
		l.lastPrune = now
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	l.last[key] = now
	return true
}

// Forget lets the next notice for key through at once (its last one was
// not sent after all).
func (l *NoticeLimiter) Forget(key string) {
	l.mu.Lock()
	delete(l.last, key)
	l.mu.Unlock()
}
