package people_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// holdersEnv is the holders service over a real SQLite store recording into
// a real audit log, with staff of three structures.
type holdersEnv struct {
	h     *people.Holders
	store *store.Store
	clock *storetest.Clock
	log   *storetest.AuditLog
	// Staff principals: mediators of A, B and C, an admin and an auditor of A.
	medA, medB, medC, adminA, auditorA people.Principal
}

func newHoldersEnv(t testing.TB, n notify.Notifier, tune func(*people.HoldersConfig)) holdersEnv {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	log := storetest.StartAuditLog(t, st, clock)
	cfg := people.HoldersConfig{Store: st, Notifier: n, CodeKey: bytes.Repeat([]byte{7}, 32), Recorder: log, Clock: clock}
	if tune != nil {
		tune(&cfg)
	}
	h, err := people.NewHolders(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := holdersEnv{h: h, store: st, clock: clock, log: log}
	for _, s := range []string{"A", "B", "C"} {
		if err := st.CreateStructure(t.Context(), people.Structure{ID: s, Name: "Structure " + s, CreatedAt: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	staff := func(id string, role people.Role, structure string) people.Principal {
		return people.Principal{Subject: people.StaffSubject(id), Kind: "staff", ID: id, Role: role, StructureID: structure, DisplayName: "Agent " + id}
	}
	e.medA, e.medB, e.medC = staff("ma", people.RoleMediator, "A"), staff("mb", people.RoleMediator, "B"), staff("mc", people.RoleMediator, "C")
	e.adminA, e.auditorA = staff("aa", people.RoleAdmin, "A"), staff("ua", people.RoleAuditor, "A")
	return e
}

// events are the audit log's events, oldest first.
func (e holdersEnv) events(t *testing.T) []audit.Event {
	t.Helper()
	page, err := e.log.Query(t.Context(), audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Collect(func(yield func(audit.Event) bool) {
		for _, ev := range slices.Backward(page.Events) {
			if !yield(ev) {
				return
			}
		}
	})
}

func (e holdersEnv) create(t *testing.T, by people.Principal, mailbox, phone, email string) people.CreateResult {
	t.Helper()
	res, err := e.h.Create(t.Context(), by, by.StructureID, people.HolderInput{
		Mailbox: mailbox, DisplayName: "Holder " + mailbox, Phone: phone, Email: email,
	})
	if err != nil {
		t.Fatalf("create %s: %v", mailbox, err)
	}
	return res
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"06 12 34 56 78":     "+33612345678",
		"06.12.34.56.78":     "+33612345678",
		"0612345678":         "+33612345678",
		"+33 6 12 34 56 78":  "+33612345678",
		"0033 6 12 34 56 78": "+33612345678",
		"+33 (0)6 12":        "",
		"+44 20 7946 0958":   "+442079460958",
		"+1-202-555-0123":    "+12025550123",
		"612345678":          "",
		"06 12 34 56":        "",
		"+33 6 12 34 56 789": "",
		"+0 123 456 789":     "",
		"06 12 34 56 7a":     "",
		"+33612345678+":      "",
		"":                   "",
		"+1234567":           "",
	} {
		got, err := people.NormalizePhone(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestNormalizeHolderNamesEveryBadField(t *testing.T) {
	h, err := people.NormalizeHolder(people.HolderInput{
		Mailbox: " Marie.Dupont@Example.ORG ", DisplayName: "  Marie   Dupont ", Phone: "06 12 34 56 78", Email: "Marie@Example.net",
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.Mailbox != "marie.dupont@example.org" || h.DisplayName != "Marie Dupont" || h.Phone != "+33612345678" ||
		h.Email != "marie@example.net" || h.Language != "fr" {
		t.Errorf("normalized: %+v", h)
	}
	_, err = people.NormalizeHolder(people.HolderInput{Mailbox: "not an address", DisplayName: strings.Repeat("x", 101), Language: "de"})
	var inv *people.InvalidHolderError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v is not an InvalidHolderError", err)
	}
	var fields []string
	for _, f := range inv.Fields {
		fields = append(fields, f.Field)
	}
	if want := []string{"mailbox", "display_name", "language", "phone"}; !slices.Equal(fields, want) {
		t.Errorf("bad fields = %v, want %v", fields, want)
	}
	for _, target := range []error{people.ErrInvalidMailbox, people.ErrInvalidDisplayName, people.ErrInvalidLanguage, people.ErrNoContact} {
		if !errors.Is(err, target) {
			t.Errorf("error does not wrap %v", target)
		}
	}
	_, err = people.NormalizeHolder(people.HolderInput{Mailbox: "a@example.org", DisplayName: "A", Phone: "12", Email: "nope"})
	if !errors.Is(err, people.ErrInvalidPhone) || !errors.Is(err, people.ErrInvalidContactEmail) || errors.Is(err, people.ErrNoContact) {
		t.Errorf("bad contacts: %v", err)
	}
}

func TestHoldersAreOnePerMailboxAndScopedToTheirStructures(t *testing.T) {
	e := newHoldersEnv(t, nil, nil)
	ctx := t.Context()
	created := e.create(t, e.medA, "Marie@Example.org", "06 12 34 56 78", "")
	if created.Linked || created.Holder.ID == "" || created.Holder.Mailbox != "marie@example.org" {
		t.Fatalf("created: %+v", created)
	}
	id := created.Holder.ID

	// Structure B helps the same person: the record is linked, not
	// duplicated, and B cannot redirect the codes.
	linked, err := e.h.Create(ctx, e.medB, "B", people.HolderInput{
		Mailbox: "MARIE@example.org", DisplayName: "Someone Else", Phone: "07 00 00 00 00", Email: "attacker@example.net",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !linked.Linked || linked.Holder.ID != id || linked.Holder.Phone != "+33612345678" || linked.Holder.Email != "" ||
		linked.Holder.DisplayName != "Holder Marie@Example.org" {
		t.Fatalf("linked: %+v", linked)
	}
	if again, err := e.h.Create(ctx, e.medB, "B", people.HolderInput{Mailbox: "marie@example.org", DisplayName: "X", Email: "x@example.org"}); err != nil || !again.Linked {
		t.Fatalf("linking twice: %+v, %v", again, err)
	}

	for _, by := range []people.Principal{e.medA, e.medB, e.adminA} {
		got, err := e.h.Get(ctx, by, by.StructureID, id)
		if err != nil || got.ID != id {
			t.Errorf("%s gets %+v, %v", by.ID, got, err)
		}
	}
	if _, err := e.h.Get(ctx, e.medC, "C", id); !errors.Is(err, mandate.ErrNotFound) {
		t.Errorf("structure C reads another structure's holder: %v", err)
	}
	if _, err := e.h.Get(ctx, e.medC, "C", "unknown"); !errors.Is(err, mandate.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	// Staff act within their own structure only; auditors do not serve holders.
	for _, tt := range []struct {
		by        people.Principal
		structure string
	}{{e.medC, "A"}, {e.auditorA, "A"}, {people.HolderPrincipal(created.Holder), "A"}} {
		if _, err := e.h.Get(ctx, tt.by, tt.structure, id); !errors.Is(err, people.ErrForbidden) {
			t.Errorf("%s on %s: Get %v", tt.by.ID, tt.structure, err)
		}
		if _, err := e.h.Create(ctx, tt.by, tt.structure, people.HolderInput{Mailbox: "z@example.org", DisplayName: "Z", Email: "z@example.org"}); !errors.Is(err, people.ErrForbidden) {
			t.Errorf("%s on %s: Create %v", tt.by.ID, tt.structure, err)
		}
		if _, err := e.h.List(ctx, tt.by, tt.structure, people.HolderQuery{}); !errors.Is(err, people.ErrForbidden) {
			t.Errorf("%s on %s: List %v", tt.by.ID, tt.structure, err)
		}
	}
	platform := people.Principal{Kind: "staff", ID: "root", Role: people.RoleAdmin, Platform: true, StructureID: "P"}
	if got, err := e.h.Get(ctx, platform, "A", id); err != nil || got.ID != id {
		t.Errorf("platform admin on A: %v", err)
	}

	// Lists and counts per structure.
	for i := range 5 {
		e.create(t, e.medA, fmt.Sprintf("a%d@example.org", i), "", fmt.Sprintf("a%d@example.net", i))
	}
	page, err := e.h.List(ctx, e.medA, "A", people.HolderQuery{Limit: 4})
	if err != nil || len(page.Holders) != 4 || page.Next != "a3@example.org" {
		t.Fatalf("page 1: %+v, %v", page, err)
	}
	page, err = e.h.List(ctx, e.medA, "A", people.HolderQuery{Limit: 4, After: page.Next})
	if err != nil || len(page.Holders) != 2 || page.Next != "" || page.Holders[1].ID != id {
		t.Fatalf("page 2: %+v, %v", page, err)
	}
	page, err = e.h.List(ctx, e.medB, "B", people.HolderQuery{Search: "MARIE"})
	if err != nil || len(page.Holders) != 1 {
		t.Fatalf("B's search: %+v, %v", page, err)
	}
	for s, want := range map[people.Principal]int{e.medA: 6, e.medB: 1, e.medC: 0} {
		if n, err := e.h.Count(ctx, s, s.StructureID); err != nil || n != want {
			t.Errorf("count of %s = %d, %v; want %d", s.StructureID, n, err, want)
		}
	}

	// Every change was recorded, with the holder and the staff member.
	var got []string
	for _, ev := range e.events(t) {
		if ev.Holder == id {
			got = append(got, fmt.Sprintf("%s %s %s %s", ev.Action, ev.Actor.ID, ev.Structure, ev.Outcome))
			if ev.Reason != "" {
				t.Errorf("reason holds %q", ev.Reason)
			}
		}
	}
	want := []string{"holder.created ma A success", "holder.linked mb B success"}
	if !slices.Equal(got, want) {
		t.Errorf("events of the holder: %v, want %v", got, want)
	}
}

func TestCreateRefusesBadInputAndChangesNothing(t *testing.T) {
	e := newHoldersEnv(t, nil, nil)
	_, err := e.h.Create(t.Context(), e.medA, "A", people.HolderInput{Mailbox: "x@example.org", DisplayName: "X"})
	if !errors.Is(err, people.ErrNoContact) {
		t.Fatalf("no contact: %v", err)
	}
	if n, _ := e.h.Count(t.Context(), e.medA, "A"); n != 0 {
		t.Errorf("%d holders after a refused creation", n)
	}
	if evs := e.events(t); len(evs) != 0 {
		t.Errorf("events after a refused creation: %+v", evs)
	}
}

// failingRecorder refuses every event, like a log that cannot write.
type failingRecorder struct{}

func (failingRecorder) Record(context.Context, audit.Event) (int64, error) {
	return 0, errors.New("audit log refuses writes")
}

func TestNoHolderWithoutItsRecord(t *testing.T) {
	e := newHoldersEnv(t, nil, func(c *people.HoldersConfig) { c.Recorder = failingRecorder{} })
	_, err := e.h.Create(t.Context(), e.medA, "A", people.HolderInput{Mailbox: "x@example.org", DisplayName: "X", Email: "x@example.net"})
	if err == nil {
		t.Fatal("a holder was created while the audit log refuses writes")
	}
	if _, err := e.store.FindHolderByMailbox(t.Context(), "x@example.org"); !errors.Is(err, mandate.ErrNotFound) {
		t.Errorf("the holder was stored anyway: %v", err)
	}
}
