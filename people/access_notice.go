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
	return h.notifyHolder(ctx, n.HolderID, "access notice", func(holder Holder) notify.Message {
		if n.Mailbox == "" {
			n.Mailbox = holder.Mailbox
		}
		return accessNoticeMessage(holder.Language, n)
	})
}

// RequestNotice is what a holder is told when a colleague asks to cover
// their mailbox (a delegation) and the request awaits their answer
// (docs/mandates.md, "Notices to the holder").
type RequestNotice struct {
	HolderID  string
	Colleague string // the colleague's name; "" when unknown
	Structure string // the colleague's structure's name; "" when unknown
	Mailbox   string // the mailbox asked for; the holder's when ""
	From, To  time.Time
	// Link is the absolute URL of the request's approval card.
	Link string
}

// NotifyRequest tells a holder, on their own contact and as NotifyAccess
// does, that a colleague asks for a delegation on their mailbox: who,
// which mailbox, for which window (Paris time), and the link where they
// answer after signing in. It records nothing: the request is in the audit
// log already.
func (h *Holders) NotifyRequest(ctx context.Context, n RequestNotice) error {
	return h.notifyHolder(ctx, n.HolderID, "request notice", func(holder Holder) notify.Message {
		if n.Mailbox == "" {
			n.Mailbox = holder.Mailbox
		}
		return requestNoticeMessage(holder.Language, n)
	})
}

// notifyHolder sends the message text(holder) to the holder by the first
// channel that delivers it (what names it in logs and errors).
func (h *Holders) notifyHolder(ctx context.Context, holderID, what string, text func(Holder) notify.Message) error {
	holder, err := h.store.GetHolder(ctx, holderID)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	channels := h.channels(holder)
	if len(channels) == 0 {
		return ErrNoContactForNotice
	}
	if h.cfg.Notifier == nil {
		return fmt.Errorf("%s: %w", what, notify.ErrNoChannel)
	}
	m := text(holder)
	var errs []error
	for _, ch := range channels {
		m.Channel, m.To = ch, holder.Email
		if ch == notify.SMS {
			m.To = holder.Phone
		}
		err := h.cfg.Notifier.Send(ctx, m)
		if err == nil {
			h.log.InfoContext(ctx, what+" sent", "holder_id", holder.ID, "channel", ch)
			return nil
		}
		h.log.WarnContext(ctx, what+" not delivered", "holder_id", holder.ID, "channel", ch, "err", err)
		errs = append(errs, fmt.Errorf("by %s: %w", ch, err))
	}
	return fmt.Errorf("%s to holder %s: %w", what, holder.ID, errors.Join(errs...))
}

// noticeWho names the colleague in a notice: "Name (Structure)", or words
// when a name is unknown.
func noticeWho(lang, colleague, structure string) string {
	switch {
	case colleague == "" && structure != "" && lang == "en":
		return "Someone from " + structure
	case colleague == "" && structure != "":
		return "Une personne de " + structure
	case colleague == "" && lang == "en":
		return "A colleague"
	case colleague == "":
		return "Une personne de l'équipe"
	case structure != "":
		return colleague + " (" + structure + ")"
	}
	return colleague
}

// inParis is t in Paris time (the notices' time zone, whatever the host).
func inParis(t time.Time) time.Time {
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		return t.In(loc)
	}
	return t
}

// whenFR says t as "4 mars 2030 à 11:00"; whenEN as "4 March 2030 at 11:00".
func whenFR(t time.Time) string {
	return fmt.Sprintf("%d %s %d à %s", t.Day(), monthsFR[t.Month()-1], t.Year(), t.Format("15:04"))
}

func whenEN(t time.Time) string { return t.Format("2 January 2006") + " at " + t.Format("15:04") }

// requestNoticeMessage is the text of a request notice in lang ("en", or
// French for anything else), short: it may go by SMS.
func requestNoticeMessage(lang string, n RequestNotice) notify.Message {
	from, to := inParis(n.From), inParis(n.To)
	who := noticeWho(lang, n.Colleague, n.Structure)
	if lang == "en" {
		return notify.Message{Language: "en", Subject: "A colleague asks to cover your mailbox", Text: fmt.Sprintf(
			"mandated: %s asks to access your mailbox %s from %s to %s (Paris time), to cover your absence.\n"+
				"To allow or refuse: %s",
			who, n.Mailbox, whenEN(from), whenEN(to), n.Link)}
	}
	return notify.Message{Language: "fr", Subject: "Demande d'accès à votre boîte mail", Text: fmt.Sprintf(
		"mandated : %s vous demande l'accès à votre boîte mail %s du %s au %s, pour vous remplacer pendant votre absence.\n"+
			"Pour autoriser ou refuser : %s",
		who, n.Mailbox, whenFR(from), whenFR(to), n.Link)}
}

// accessNoticeMessage is the text of an access notice in lang ("en", or
// French for anything else), short: it may go by SMS.
func accessNoticeMessage(lang string, n AccessNotice) notify.Message {
	at := inParis(n.At)
	who := noticeWho(lang, n.Colleague, n.Structure)
	if lang == "en" {
		return notify.Message{Language: "en", Subject: "Access to your mailbox", Text: fmt.Sprintf(
			"mandated: %s accessed your mailbox %s on %s (Paris time), under your delegation.\n"+
				"To see or stop this delegation: %s",
			who, n.Mailbox, whenEN(at), n.Link)}
	}
	return notify.Message{Language: "fr", Subject: "Accès à votre boîte mail", Text: fmt.Sprintf(
		"mandated : %s a accédé à votre boîte mail %s le %s, grâce à votre délégation.\n"+
			"Pour voir ou arrêter cette délégation : %s",
		who, n.Mailbox, whenFR(at), n.Link)}
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
