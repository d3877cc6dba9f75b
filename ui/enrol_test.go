package ui_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

func TestEnrolmentPageSetsUpTheAccountOnce(t *testing.T) {
	e := newEnv(t)
	_, token, err := e.people.CreateStaff(t.Context(), "paul@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	path := "/enrol?token=" + url.QueryEscape(token)
	resp, body := e.get(path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enrolment page: %d", resp.StatusCode)
	}
	view, err := e.people.BeginEnrolment(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, body, "paul@mairie.fr", `src="data:image/png;base64,`, view.TOTP.Secret, `href="otpauth://totp/`,
		`<label for="display_name">`, `autocomplete="new-password"`, `autocomplete="one-time-code"`, `inputmode="numeric"`)

	resp, body = e.post(path, url.Values{"_csrf": {e.csrf(body)}, "display_name": {"Paul Martin"}, "password": {"court"}, "code": {e.code(view.TOTP.Secret)}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("short password: %d", resp.StatusCode)
	}
	mustContain(t, body, `role="alert"`, `href="#password"`, `id="password-error"`, "au moins 12 caractères",
		`aria-describedby="password-hint password-error"`, `aria-invalid="true"`, `value="Paul Martin"`, view.TOTP.Secret)
	if strings.Contains(body, `value="court"`) {
		t.Error("the page echoes the password")
	}

	resp, _ = e.post(path, url.Values{"_csrf": {e.csrf(body)}, "display_name": {"Paul Martin"}, "password": {testPassword}, "code": {e.code(view.TOTP.Secret)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?enrolled=1" {
		t.Fatalf("enrolment: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = e.get("/signin?enrolled=1")
	mustContain(t, body, `role="status"`, "Votre compte est prêt")

	resp, body = e.get(path)
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("used link: %d", resp.StatusCode)
	}
	mustContain(t, body, "Ce lien ne fonctionne plus")
	if resp, _ := e.get("/enrol?token=nope"); resp.StatusCode != http.StatusGone {
		t.Fatalf("unknown link: %d", resp.StatusCode)
	}
}

func TestDeadEnrolmentLinkShowsThePlainPageAndIsRecorded(t *testing.T) {
	var log *storetest.AuditLog
	var svc *people.Service
	e := newEnv(t, func(partial *env, d *ui.Deps) {
		log = storetest.StartAuditLog(t, partial.store, partial.clock)
		sealer, err := seal.New(randomBytes(t, seal.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		svc = people.NewService(partial.store, sealer, partial.clock, nil, people.Config{Recorder: log})
		d.People = svc
	})
	staff, token, err := svc.CreateStaff(t.Context(), "paul@mairie.fr", "mediator", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(73 * time.Hour)
	for _, path := range []string{"/enrol?token=" + url.QueryEscape(token), "/enrol?token=nope", "/enrol"} {
		resp, body := e.get(path)
		if resp.StatusCode != http.StatusGone {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		mustContain(t, body, "Ce lien ne fonctionne plus")
	}
	_, page := e.get("/signin")
	resp, body := e.post("/enrol?token=nope", url.Values{"_csrf": {e.csrf(page)}, "display_name": {"Mallory"}, "password": {testPassword}, "code": {"123456"}})
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("submitting an unknown link: %d", resp.StatusCode)
	}
	mustContain(t, body, "Ce lien ne fonctionne plus")

	events, err := log.Query(t.Context(), audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		actor           audit.ActorKind
		actorID, reason string
	}
	var got []row
	for _, ev := range slices.Backward(events.Events) {
		if ev.Action != audit.ActionEnrolmentDone || ev.Outcome != audit.OutcomeDenied {
			t.Errorf("unexpected event %+v", ev)
			continue
		}
		got = append(got, row{ev.Actor.Kind, ev.Actor.ID, ev.Reason})
	}
	want := []row{
		{audit.ActorStaff, staff.ID, "enrolment link expired or replaced"},
		{audit.ActorUnknown, "", "enrolment link unknown"},
		{audit.ActorUnknown, "", "enrolment link unknown"},
		{audit.ActorUnknown, "", "enrolment link unknown"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
}
