package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

func TestHomeLinksFollowPermissionsAndShowsBanners(t *testing.T) {
	var adm *people.Admin
	e := newEnv(t, func(e *env, d *ui.Deps) {
		adm = people.NewAdmin(e.people, e.store, people.AdminConfig{})
		d.Banners = adm
	})
	ctx := t.Context()
	secret := e.enrolled("marie@mairie.fr") // a mediator of "Mairie de Trifouillis"
	if resp, _ := e.signIn("marie@mairie.fr", testPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	_, body := e.get("/")
	mustContain(t, body, `href="/console/holders"`, `href="/account/sessions"`, `href="/account/passkeys"`, `href="/account/mailbox"`)
	for _, forbidden := range []string{`href="/admin"`, `href="/audit"`, `href="/admin/holders/import"`} {
		if strings.Contains(body, forbidden) {
			t.Errorf("a mediator's home links to %s", forbidden)
		}
	}

	// An admin of the same structure posts a banner for staff: the mediator sees it.
	staff, err := e.store.FindStaffByEmail(ctx, "marie@mairie.fr")
	if err != nil {
		t.Fatal(err)
	}
	admin := people.Principal{Kind: "staff", ID: "admin-1", Subject: people.StaffSubject("admin-1"), Role: people.RoleAdmin, StructureID: staff.StructureID}
	now := e.clock.Now()
	if _, err := adm.PostBanner(ctx, admin, staff.StructureID, people.BannerInput{
		Audience: string(people.AudienceStaff), TextFR: "Fermeture exceptionnelle vendredi", TextEN: "Closed on Friday",
		StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.PostBanner(ctx, admin, staff.StructureID, people.BannerInput{
		Audience: string(people.AudienceHolders), TextFR: "Pour les personnes accompagnées",
		StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	_, body = e.get("/")
	mustContain(t, body, `role="note" lang="fr"`, "Fermeture exceptionnelle vendredi")
	if strings.Contains(body, "Pour les personnes accompagnées") {
		t.Error("the staff home shows a banner meant for holders")
	}
	_, body = e.get("/?lang=en")
	mustContain(t, body, `role="note" lang="en"`, "Closed on Friday")
}
