package api

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

func TestStaffMailboxAPI(t *testing.T) {
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	quiet := slog.New(slog.DiscardHandler)
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	log := storetest.StartAuditLog(t, st, clock)
	svc := people.NewService(st, sealer, clock, quiet, people.Config{Recorder: log})
	staff, _, err := svc.CreateStaff(t.Context(), "marie@mairie.fr", "auditor", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateStaff(t.Context(), staff.ID, func(s *people.Staff) error {
		s.Status, s.DisplayName = people.StaffActive, "Marie Dupont"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	smtp := notifytest.StartSMTP(t)
	h, err := people.NewHolders(people.HoldersConfig{Store: st, Notifier: notifytest.SMTPNotifier(t, smtp),
		CodeKey: bytes.Repeat([]byte{5}, 32), Recorder: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	who := map[string]people.Principal{
		"marie":  {Kind: "staff", ID: staff.ID, Role: people.RoleAuditor, StructureID: staff.StructureID},
		"holder": {Kind: "holder", ID: "h1"},
		"gone":   {Kind: "staff", ID: "no-such-account", Role: people.RoleMediator, StructureID: staff.StructureID},
	}
	e := NewEcho(Config{}, Deps{Logger: quiet})
	RegisterStaffMailbox(e, people.NewStaffMailboxes(svc, h), func(c echo.Context) (people.Principal, bool) {
		p, ok := who[c.Request().Header.Get("X-Test-Who")]
		return p, ok
	}, 15*time.Minute)
	f := &holdersFixture{e: e}
	rec := f.do(t, "marie", http.MethodGet, "/api/me/mailbox", "", "")
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "mandated_csrf" {
			f.csrf = ck
		}
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if got := decodeJSON[mailboxJSON](t, rec); got.Mailbox != "marie@mairie.fr" || got.Declared || got.Holder != nil {
		t.Errorf("before: %+v", got)
	}
	wantHolderProblem(t, f.do(t, "", http.MethodGet, "/api/me/mailbox", "", ""), http.StatusUnauthorized)
	wantHolderProblem(t, f.do(t, "holder", http.MethodPost, "/api/me/mailbox/code", "", ""), http.StatusUnauthorized)
	wantHolderProblem(t, f.do(t, "gone", http.MethodPost, "/api/me/mailbox/code", "", ""), http.StatusForbidden)

	rec = f.do(t, "marie", http.MethodPost, "/api/me/mailbox/code?lang=en", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("code: %d %s", rec.Code, rec.Body)
	}
	ch := decodeJSON[mailboxChallengeJSON](t, rec)
	if ch.Mailbox != "marie@mairie.fr" || ch.Challenge == "" || ch.ExpiresAt != "2030-03-04T10:10:00Z" {
		t.Errorf("challenge %+v", ch)
	}
	mail := smtp.WaitFor(t, "marie@mairie.fr")
	code := regexp.MustCompile(`: (\d{8})\n`).FindStringSubmatch(mail.Text)
	if code == nil || mail.Subject != "Your code to declare your professional mailbox" {
		t.Fatalf("email %q:\n%s", mail.Subject, mail.Text)
	}

	wantHolderProblem(t, f.do(t, "marie", http.MethodPost, "/api/me/mailbox", "application/json", `{"challenge":"`+ch.Challenge+`","code":"00000000"}`), http.StatusUnprocessableEntity)
	wantHolderProblem(t, f.do(t, "marie", http.MethodPost, "/api/me/mailbox", "application/json", `{"challenge":"x","code":"1","extra":1}`), http.StatusBadRequest)
	wantHolderProblem(t, f.do(t, "marie", http.MethodPost, "/api/me/mailbox", "text/plain", `{}`), http.StatusUnsupportedMediaType)

	rec = f.do(t, "marie", http.MethodPost, "/api/me/mailbox", "application/json", `{"challenge":"`+ch.Challenge+`","code":"`+code[1]+`","language":"en"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("declare: %d %s", rec.Code, rec.Body)
	}
	res := decodeJSON[createHolderResponse](t, rec)
	if res.Linked || res.Holder.Mailbox != "marie@mairie.fr" || res.Holder.Language != "en" || !res.Holder.ContactConfirmed || res.Holder.EmailMasked != "m•••@mairie.fr" {
		t.Errorf("declared %+v", res)
	}
	rec = f.do(t, "marie", http.MethodGet, "/api/me/mailbox", "", "")
	if got := decodeJSON[mailboxJSON](t, rec); !got.Declared || got.Holder == nil || got.Holder.ID != res.Holder.ID {
		t.Errorf("after: %+v", got)
	}
	wantHolderProblem(t, f.do(t, "marie", http.MethodPost, "/api/me/mailbox/code", "", ""), http.StatusConflict)
	if rec := f.do(t, "marie", http.MethodPost, "/api/me/mailbox", "application/json", `{"challenge":"`+ch.Challenge+`","code":"`+code[1]+`"}`); rec.Code != http.StatusOK {
		t.Errorf("declaring again: %d %s", rec.Code, rec.Body)
	}
}
