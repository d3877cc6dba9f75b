package people_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store/storetest"
)

const noticeLink = "https://id.example.org/holder/mandates"

func mustContainAll(t *testing.T, what, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// TestAccessNoticeSaysWhoWhichMailboxAndWhen: the notice goes to the
// holder's own contact — by SMS first, by email when the SMS fails or the
// holder has no phone — in their language, and says who (name and
// structure), which mailbox, when (Paris time) and where to stop it.
func TestAccessNoticeSaysWhoWhichMailboxAndWhen(t *testing.T) {
	hook := notifytest.StartWebhook(t)
	mail := notifytest.StartSMTP(t)
	e := newHoldersEnv(t, notify.Router{notify.SMS: notifytest.WebhookNotifier(t, hook), notify.Email: notifytest.SMTPNotifier(t, mail)}, nil)
	ctx := t.Context()
	at := time.Date(2030, 3, 4, 10, 5, 0, 0, time.UTC) // 11:05 in Paris
	both := e.create(t, e.medA, "jeanne.martin@mairie.example", "06 12 34 56 78", "jeanne@perso.example").Holder

	err := e.h.NotifyAccess(ctx, people.AccessNotice{HolderID: both.ID, Colleague: "Paul Martin", Structure: "Mairie de Lyon",
		Mailbox: "jeanne.martin@mairie.example", At: at, Link: noticeLink})
	if err != nil {
		t.Fatal(err)
	}
	sms := hook.WaitFor(t, "+33612345678").Payload
	if sms.Language != "fr" {
		t.Errorf("language %q", sms.Language)
	}
	mustContainAll(t, "SMS", sms.Text, "Paul Martin (Mairie de Lyon) a accédé à votre boîte mail jeanne.martin@mairie.example",
		"le 4 mars 2030 à 11:05", "délégation", "Pour voir ou arrêter cette délégation : "+noticeLink)
	if n := len(mail.Messages()); n != 0 {
		t.Errorf("%d emails besides the SMS", n)
	}

	// The gateway refuses: the notice goes by email instead.
	hook.Respond(400)
	if err := e.h.NotifyAccess(ctx, people.AccessNotice{HolderID: both.ID, Colleague: "Paul Martin", Structure: "Mairie de Lyon",
		At: at, Link: noticeLink}); err != nil {
		t.Fatalf("fallback to email: %v", err)
	}
	m := mail.WaitFor(t, "jeanne@perso.example")
	if m.Subject != "Accès à votre boîte mail" {
		t.Errorf("subject %q", m.Subject)
	}
	mustContainAll(t, "email", m.Text, "Paul Martin (Mairie de Lyon) a accédé à votre boîte mail jeanne.martin@mairie.example", noticeLink)

	// In English, for a holder who reads English and has only an email;
	// unknown names get words, not blanks.
	en := e.create(t, e.medA, "john.smith@mairie.example", "", "john@perso.example").Holder
	if err := e.store.UpdateHolder(ctx, en.ID, func(h *people.Holder) error { h.Language = "en"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.h.NotifyAccess(ctx, people.AccessNotice{HolderID: en.ID, Structure: "Mairie de Lyon", At: at, Link: noticeLink}); err != nil {
		t.Fatal(err)
	}
	m = mail.WaitFor(t, "john@perso.example")
	if m.Subject != "Access to your mailbox" {
		t.Errorf("subject %q", m.Subject)
	}
	mustContainAll(t, "English email", m.Text, "Someone from Mairie de Lyon accessed your mailbox john.smith@mairie.example",
		"on 4 March 2030 at 11:05 (Paris time)", "To see or stop this delegation: "+noticeLink)
}

// TestRequestNoticeSaysWhoWhichMailboxWhenAndWhereToAnswer: a colleague's
// request for a delegation is told to the holder on their own contact, in
// their language: who, which mailbox, the window (Paris time) and the link
// to the approval card.
func TestRequestNoticeSaysWhoWhichMailboxWhenAndWhereToAnswer(t *testing.T) {
	hook := notifytest.StartWebhook(t)
	mail := notifytest.StartSMTP(t)
	e := newHoldersEnv(t, notify.Router{notify.SMS: notifytest.WebhookNotifier(t, hook), notify.Email: notifytest.SMTPNotifier(t, mail)}, nil)
	ctx := t.Context()
	from := time.Date(2030, 7, 1, 6, 0, 0, 0, time.UTC) // 8:00 in Paris (summer time)
	to := from.Add(14 * 24 * time.Hour)
	const link = "https://id.example.org/holder/mandates/m-1/approve"
	fr := e.create(t, e.medA, "jeanne.martin@mairie.example", "06 12 34 56 78", "").Holder
	if err := e.h.NotifyRequest(ctx, people.RequestNotice{HolderID: fr.ID, Colleague: "Paul Martin", Structure: "Mairie de Lyon",
		From: from, To: to, Link: link}); err != nil {
		t.Fatal(err)
	}
	sms := hook.WaitFor(t, "+33612345678").Payload
	mustContainAll(t, "SMS", sms.Text, "Paul Martin (Mairie de Lyon) vous demande l'accès à votre boîte mail jeanne.martin@mairie.example",
		"du 1 juillet 2030 à 08:00 au 15 juillet 2030 à 08:00", "Pour autoriser ou refuser : "+link)

	en := e.create(t, e.medA, "john.smith@mairie.example", "", "john@perso.example").Holder
	if err := e.store.UpdateHolder(ctx, en.ID, func(h *people.Holder) error { h.Language = "en"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.h.NotifyRequest(ctx, people.RequestNotice{HolderID: en.ID, Colleague: "Paul Martin", From: from, To: to, Link: link}); err != nil {
		t.Fatal(err)
	}
	m := mail.WaitFor(t, "john@perso.example")
	if m.Subject != "A colleague asks to cover your mailbox" {
		t.Errorf("subject %q", m.Subject)
	}
	mustContainAll(t, "English email", m.Text, "Paul Martin asks to access your mailbox john.smith@mairie.example",
		"from 1 July 2030 at 08:00 to 15 July 2030 at 08:00 (Paris time)", "To allow or refuse: "+link)
}

// TestAccessNoticeFailuresAreErrors: no contact, no notifier, and every
// channel failing each come back as errors (the caller logs them).
func TestAccessNoticeFailuresAreErrors(t *testing.T) {
	hook := notifytest.StartWebhook(t)
	e := newHoldersEnv(t, notify.Router{notify.SMS: notifytest.WebhookNotifier(t, hook)}, nil)
	ctx := t.Context()
	h := e.create(t, e.medA, "jeanne@mairie.example", "06 12 34 56 78", "").Holder
	n := people.AccessNotice{HolderID: h.ID, Colleague: "Paul", At: time.Now(), Link: noticeLink}
	hook.Respond(400)
	if err := e.h.NotifyAccess(ctx, n); err == nil || !strings.Contains(err.Error(), "by sms") {
		t.Errorf("the gateway refused: %v", err)
	}
	// A holder with neither phone nor email (their contacts erased).
	if err := e.store.UpdateHolder(ctx, h.ID, func(x *people.Holder) error { x.Phone = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.h.NotifyAccess(ctx, n); !errors.Is(err, people.ErrNoContactForNotice) {
		t.Errorf("no contact: %v", err)
	}
	none := newHoldersEnv(t, nil, nil)
	h = none.create(t, none.medA, "x@mairie.example", "06 12 34 56 78", "").Holder
	if err := none.h.NotifyAccess(ctx, people.AccessNotice{HolderID: h.ID, At: time.Now()}); !errors.Is(err, notify.ErrNoChannel) {
		t.Errorf("no notifier: %v", err)
	}
	if err := e.h.NotifyAccess(ctx, people.AccessNotice{HolderID: "nobody", At: time.Now()}); !errors.Is(err, mandate.ErrNotFound) {
		t.Errorf("unknown holder: %v", err)
	}
}

// TestNoticeLimiterLetsOnePerIntervalPerKey: one notice per key per 15
// minutes by the clock given, keys apart, Forget lets the next one through,
// and concurrent callers get exactly one yes.
func TestNoticeLimiterLetsOnePerIntervalPerKey(t *testing.T) {
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	l := people.NewNoticeLimiter(15*time.Minute, clock)
	if !l.Allow("m1") {
		t.Fatal("first notice refused")
	}
	if l.Allow("m1") {
		t.Error("second notice at once allowed")
	}
	if !l.Allow("m2") {
		t.Error("another mandate's first notice refused")
	}
	clock.Advance(15*time.Minute - time.Second)
	if l.Allow("m1") {
		t.Error("a notice 14:59 later allowed")
	}
	clock.Advance(time.Second)
	if !l.Allow("m1") {
		t.Error("a notice 15 minutes later refused")
	}
	l.Forget("m1")
	if !l.Allow("m1") {
		t.Error("a notice after Forget refused")
	}

	clock.Advance(time.Hour)
	var yes atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Allow("m3") {
				yes.Add(1)
			}
		}()
	}
	wg.Wait()
	if yes.Load() != 1 {
		t.Errorf("%d concurrent notices allowed, want 1", yes.Load())
	}
}
