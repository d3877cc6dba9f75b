package mandate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// world is a mandate service on a real SQLite store and a real audit log,
// with people created in that store and read through people.Directory.
type world struct {
	svc     *mandate.Service
	store   *store.Store
	clock   *storetest.Clock
	log     *storetest.AuditLog
	dir     *people.Directory
	rec     *switchRecorder
	revoked *revocations
	watched *watchers
}

const (
	structure1 = "s1"
	structure2 = "s2"
	mediator   = "st-mediator"  // s1, active
	colleague  = "st-colleague" // s1, active
	admin      = "st-admin"     // s1, active admin
	gone       = "st-gone"      // s1, deactivated
	outsider   = "st-outsider"  // s2, active
	holder1    = "h-awa"        // served by s1
	holder2    = "h-bruno"      // served by s1
	holder3    = "h-chloe"      // served by s2 only
	client     = "console"
)

func newWorld(t *testing.T) *world { return newWorldOn(t, storetest.OpenSQLiteWith) }

// backends are the stores the concurrency tests run on (PostgreSQL when
// storetest's environment names one).
var backends = []struct {
	name string
	open storetest.Opener
}{
	{"sqlite", storetest.OpenSQLiteWith},
	{"postgres", storetest.OpenPostgresWith},
}

func newWorldOn(t *testing.T, open storetest.Opener) *world {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	st := open(t, store.Options{Clock: clock})
	w := &world{store: st, clock: clock, dir: people.NewDirectory(st), revoked: &revocations{}, watched: newWatchers()}
	w.log = storetest.StartAuditLog(t, st, clock)
	w.rec = &switchRecorder{next: audit.MandateRecorder(w.log.Log)}
	ctx := t.Context()
	must(t, st.CreateStructure(ctx, people.Structure{ID: structure1, Name: "France Services Tulle", CreatedAt: clock.Now()}))
	must(t, st.CreateStructure(ctx, people.Structure{ID: structure2, Name: "Mairie de Brive", CreatedAt: clock.Now()}))
	for _, s := range []people.Staff{
		{ID: mediator, Email: "marie@example.org", DisplayName: "Marie Curie", Role: people.RoleMediator, StructureID: structure1, Status: people.StaffActive},
		{ID: colleague, Email: "paul@example.org", DisplayName: "Paul Langevin", Role: people.RoleMediator, StructureID: structure1, Status: people.StaffActive},
		{ID: admin, Email: "irene@example.org", DisplayName: "Irène Joliot", Role: people.RoleAdmin, StructureID: structure1, Status: people.StaffActive},
		{ID: gone, Email: "gone@example.org", DisplayName: "Gone", Role: people.RoleMediator, StructureID: structure1, Status: people.StaffDeactivated},
		{ID: outsider, Email: "out@example.org", DisplayName: "Out Sider", Role: people.RoleMediator, StructureID: structure2, Status: people.StaffActive},
	} {
		s.CreatedAt = clock.Now()
		must(t, st.CreateStaff(ctx, s))
	}
	for _, h := range []struct {
		id, mailbox, name, structure string
	}{
		{holder1, "awa.diallo@example.org", "Awa Diallo", structure1},
		{holder2, "bruno@example.org", "Bruno Martin", structure1},
		{holder3, "chloe@example.org", "Chloé Petit", structure2},
	} {
		must(t, st.CreateHolder(ctx, people.Holder{ID: h.id, Mailbox: h.mailbox, DisplayName: h.name, Email: "contact-" + h.mailbox, Language: "fr"}, h.structure))
	}
	must(t, st.CreateClient(ctx, &authz.Client{
		ID: client, Name: "Console", SecretHash: []byte("hash"), GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code"},
		Scopes: []string{"mail.read", "mail.send"}, AuthMethod: authz.AuthMethodSecretBasic, CreatedAt: clock.Now(),
	}))
	w.svc = w.service(t, mandate.ServiceConfig{})
	return w
}

// service returns another Service on the world's store, recorder and
// collaborators: another replica.
func (w *world) service(t *testing.T, cfg mandate.ServiceConfig) *mandate.Service {
	t.Helper()
	svc, err := mandate.NewService(mandate.Deps{
		Store: w.store, Dir: w.dir, Revoker: w.revoked, Watchers: w.watched, Recorder: w.rec, Clock: w.clock,
	}, cfg)
	must(t, err)
	return svc
}

// switchRecorder records into the audit log until failing is set, then
// fails like a database that refuses writes.
type switchRecorder struct {
	next    mandate.Recorder
	failing atomic.Bool
}

func (r *switchRecorder) RecordMandate(ctx context.Context, rec mandate.Record) error {
	if r.failing.Load() {
		return errors.New("audit database refuses writes")
	}
	return r.next.RecordMandate(ctx, rec)
}

type revocations struct {
	mu     sync.Mutex
	grants []string
}

func (r *revocations) RevokeGrant(_ context.Context, grantID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.grants = append(r.grants, grantID)
	return nil
}

func (r *revocations) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.grants)
}

type watchers struct {
	mu    sync.Mutex
	calls map[string]int
	ch    chan string
}

func newWatchers() *watchers { return &watchers{calls: map[string]int{}, ch: make(chan string, 1000)} }

func (w *watchers) MandateChanged(_ context.Context, id string) {
	w.mu.Lock()
	w.calls[id]++
	w.mu.Unlock()
	w.ch <- id
}

func (w *watchers) count(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[id]
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// session is a mediator's request for an assisted session with holder1.
func session() mandate.Request {
	return mandate.Request{
		Kind: mandate.KindSession, StructureID: structure1, HolderID: holder1, DelegateID: mediator, ClientID: client,
		Scopes:  []string{mandate.ScopeMailRead, mandate.ScopeMailSend},
		Purpose: "Dossier CAF", PurposeCategory: mandate.PurposeSocial, Duration: 30 * time.Minute, RequestID: "req-1",
	}
}

func (w *world) request(t *testing.T, req mandate.Request) mandate.Mandate {
	t.Helper()
	m, err := w.svc.Request(t.Context(), req)
	must(t, err)
	return m
}

func (w *world) approved(t *testing.T) mandate.Mandate {
	t.Helper()
	m := w.request(t, session())
	m, err := w.svc.Approve(t.Context(), holder1, m.ID, mandate.Approval{RequestID: "req-2"})
	must(t, err)
	return m
}

func (w *world) active(t *testing.T, grant string) mandate.Mandate {
	t.Helper()
	m := w.approved(t)
	m, err := w.svc.Activate(t.Context(), m.ID, grant, "req-3")
	must(t, err)
	return m
}

func (w *world) get(t *testing.T, id string) mandate.Mandate {
	t.Helper()
	m, err := w.svc.Get(t.Context(), id)
	must(t, err)
	return m
}

// ev is one audit event as the tests compare them.
type ev struct {
	Action  audit.Action
	Outcome audit.Outcome
	Actor   string // kind:id
	Reason  string
}

func (e ev) String() string {
	return fmt.Sprintf("%s %s by %s (%s)", e.Action, e.Outcome, e.Actor, e.Reason)
}

// events returns the audit events matching f, oldest first.
func (w *world) events(t *testing.T, f audit.Filter) []ev {
	t.Helper()
	f.Limit = 1000
	page, err := w.log.Query(t.Context(), f)
	must(t, err)
	var out []ev
	for _, e := range slices.Backward(page.Events) {
		out = append(out, ev{e.Action, e.Outcome, string(e.Actor.Kind) + ":" + e.Actor.ID, e.Reason})
	}
	return out
}

func (w *world) mandateEvents(t *testing.T, id string) []ev {
	t.Helper()
	return w.events(t, audit.Filter{MandateID: id})
}

func wantEvents(t *testing.T, got, want []ev) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("audit events:\n got %v\nwant %v", got, want)
	}
}

func denied(actor, reason string) ev {
	return ev{audit.ActionMandateRequestDenied, audit.OutcomeDenied, actor, reason}
}

func TestSessionLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	t0 := w.clock.Now()

	m := w.request(t, session())
	if m.State != mandate.StateRequested || m.Version != 1 || len(m.ID) != 26 || !m.AnswerBy.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("requested mandate = %+v", m)
	}
	if !slices.Equal(m.Exclusions, []string{mandate.ExcludePersonal}) || m.Mailbox != "awa.diallo@example.org" || m.Presence != mandate.PresenceRequired {
		t.Fatalf("requested mandate = %+v", m)
	}
	if m.Live(t0) {
		t.Fatal("a request is live")
	}

	w.clock.Advance(time.Minute)
	t1 := w.clock.Now()
	m, err := w.svc.Approve(ctx, holder1, m.ID, mandate.Approval{RequestID: "req-2"})
	must(t, err)
	if m.State != mandate.StateApproved || !m.NotBefore.Equal(t1) || !m.NotAfter.Equal(t1.Add(30*time.Minute)) ||
		!m.LeaseUntil.Equal(t1.Add(15*time.Second)) || !m.DecidedAt.Equal(t1) || m.Version != 2 {
		t.Fatalf("approved mandate = %+v", m)
	}
	if m.ConsentVersion != "2026-11" {
		t.Fatalf("consent version = %q", m.ConsentVersion)
	}
	// The receipt rebuilt from what is stored has the stored hash.
	stored := w.get(t, m.ID)
	holder, err := w.dir.Holder(ctx, structure1, holder1)
	must(t, err)
	delegate, err := w.dir.Delegate(ctx, mediator)
	must(t, err)
	receipt := mandate.NewReceipt(stored, holder, delegate, "France Services Tulle", stored.ConsentVersion, stored.DecidedAt)
	if stored.ConsentHash == "" || receipt.Hash() != stored.ConsentHash {
		t.Fatalf("consent hash %q, the receipt rebuilt from the store hashes to %q", stored.ConsentHash, receipt.Hash())
	}
	// The receipt's bytes are kept as approved.
	if string(stored.ConsentReceipt) != string(receipt.Canonical()) || string(m.ConsentReceipt) != string(stored.ConsentReceipt) {
		t.Fatalf("stored receipt %s\nwant %s", stored.ConsentReceipt, receipt.Canonical())
	}
	if !m.Live(t1) {
		t.Fatal("an approved session is not live")
	}

	m, err = w.svc.Activate(ctx, m.ID, "grant-1", "req-3")
	must(t, err)
	if m.State != mandate.StateActive || m.GrantID != "grant-1" || !m.ActivatedAt.Equal(t1) {
		t.Fatalf("activated mandate = %+v", m)
	}

	w.clock.Advance(10 * time.Second)
	until, err := w.svc.Heartbeat(ctx, holder1, m.ID)
	must(t, err)
	if !until.Equal(w.clock.Now().Add(15 * time.Second)) {
		t.Fatalf("lease until %s", until)
	}
	w.clock.Advance(10 * time.Second) // past the first lease, inside the second
	if !w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatal("a session with a fresh heartbeat is not live")
	}

	m, err = w.svc.End(ctx, m.ID, mandate.EndedByHolder, mandate.Actor{Kind: "holder", ID: holder1}, "req-4")
	must(t, err)
	if m.State != mandate.StateEnded || m.EndReason != mandate.EndedByHolder || m.EndedBy != holder1 || !m.EndedAt.Equal(w.clock.Now()) || !m.LeaseUntil.IsZero() {
		t.Fatalf("ended mandate = %+v", m)
	}
	if m.Live(w.clock.Now()) {
		t.Fatal("an ended mandate is live")
	}
	if got := w.revoked.list(); !slices.Equal(got, []string{"grant-1"}) {
		t.Fatalf("revoked grants = %v", got)
	}
	if n := w.watched.count(m.ID); n != 4 {
		t.Fatalf("watchers told %d times, want 4 (request, approve, activate, end)", n)
	}
	if _, err := w.svc.Heartbeat(ctx, holder1, m.ID); !errors.Is(err, mandate.ErrConflict) {
		t.Fatalf("heartbeat after the end: %v", err)
	}

	wantEvents(t, w.mandateEvents(t, m.ID), []ev{
		{audit.ActionMandateRequested, audit.OutcomeSuccess, "staff:" + mediator, ""},
		{audit.ActionMandateApproved, audit.OutcomeSuccess, "holder:" + holder1, ""},
		{audit.ActionMandateActivated, audit.OutcomeSuccess, "staff:" + mediator, ""},
		{audit.ActionMandateEnded, audit.OutcomeSuccess, "holder:" + holder1, "ended by holder"},
	})
	page, err := w.log.Query(ctx, audit.Filter{MandateID: m.ID, Action: audit.ActionMandateApproved})
	must(t, err)
	if e := page.Events[0]; e.Target != "receipt:"+stored.ConsentHash || e.Actor.Name != "Awa Diallo" || e.Holder != holder1 || e.Structure != structure1 || e.RequestID != "req-2" {
		t.Fatalf("approval event = %+v", e)
	}
}

func TestRequestNormalizesWhatIsAsked(t *testing.T) {
	w := newWorld(t)
	req := session()
	req.HolderID = ""
	req.HolderMailbox = "  Awa.Diallo@EXAMPLE.org "
	req.Scopes = []string{mandate.ScopeMailSend, mandate.ScopeMailRead, mandate.ScopeMailSend}
	req.Purpose = "  Déclaration\r\nde revenus \t "
	req.Duration = 0
	req.IncludePersonal = true
	req.AnswerWithin = 3 * time.Minute
	m := w.request(t, req)
	if m.HolderID != holder1 || m.Mailbox != "awa.diallo@example.org" {
		t.Errorf("holder found by mailbox = %q %q", m.HolderID, m.Mailbox)
	}
	if !slices.Equal(m.Scopes, []string{mandate.ScopeMailRead, mandate.ScopeMailSend}) {
		t.Errorf("scopes = %v", m.Scopes)
	}
	if m.Purpose != "Déclaration\nde revenus" {
		t.Errorf("purpose = %q", m.Purpose)
	}
	if m.Duration != mandate.DefaultSessionDuration || len(m.Exclusions) != 0 || !m.AnswerBy.Equal(w.clock.Now().Add(3*time.Minute)) {
		t.Errorf("mandate = %+v", m)
	}
	stored := w.get(t, m.ID)
	if stored.ID != m.ID || stored.Purpose != m.Purpose || !slices.Equal(stored.Scopes, m.Scopes) {
		t.Errorf("stored %+v, returned %+v", stored, m)
	}
	other := w.request(t, session())
	if other.ID == m.ID {
		t.Fatal("two mandates share an id")
	}
}

func TestHolderRefuses(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.request(t, session())
	m, err := w.svc.Refuse(ctx, holder1, m.ID, "req-2")
	must(t, err)
	if m.State != mandate.StateRefused || !m.DecidedAt.Equal(w.clock.Now()) || !m.LeaseUntil.IsZero() || m.ConsentHash != "" {
		t.Fatalf("refused mandate = %+v", m)
	}
	_, err = w.svc.Approve(ctx, holder1, m.ID, mandate.Approval{})
	wantErr(t, err, mandate.ErrInvalidTransition)
	_, err = w.svc.Refuse(ctx, holder1, m.ID, "")
	wantErr(t, err, mandate.ErrConflict)
	if got := w.get(t, m.ID); got.State != mandate.StateRefused || got.Version != 2 {
		t.Fatalf("mandate after answers to a refused request = %+v", got)
	}
	if n := w.watched.count(m.ID); n != 2 {
		t.Fatalf("watchers told %d times, want 2", n)
	}
	wantEvents(t, w.mandateEvents(t, m.ID), []ev{
		{audit.ActionMandateRequested, audit.OutcomeSuccess, "staff:" + mediator, ""},
		{audit.ActionMandateRefused, audit.OutcomeSuccess, "holder:" + holder1, ""},
		denied("holder:"+holder1, "approve refused: the mandate is refused"),
		denied("holder:"+holder1, "refuse refused: the mandate is refused"),
	})
}

func TestUnansweredRequestLapses(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.request(t, session())
	w.clock.Advance(10*time.Minute - time.Microsecond)
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before the deadline: %d, %v", n, err)
	}
	w.clock.Advance(time.Microsecond)
	_, err := w.svc.Approve(ctx, holder1, m.ID, mandate.Approval{})
	wantErr(t, err, mandate.ErrConflict)
	n, err := w.svc.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	got := w.get(t, m.ID)
	if got.State != mandate.StateUnanswered || !got.DecidedAt.Equal(w.clock.Now()) {
		t.Fatalf("lapsed mandate = %+v", got)
	}
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d, %v", n, err)
	}
	wantEvents(t, w.mandateEvents(t, m.ID), []ev{
		{audit.ActionMandateRequested, audit.OutcomeSuccess, "staff:" + mediator, ""},
		denied("holder:"+holder1, "approve refused: the time to answer is over"),
		{audit.ActionMandateUnanswered, audit.OutcomeSuccess, "system:", ""},
	})
}

func TestHeartbeatsKeepTheSessionAliveAndMissedOnesEndIt(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.active(t, "grant-7")
	for range 12 { // two minutes of heartbeats every 10 s, swept each time
		w.clock.Advance(10 * time.Second)
		_, err := w.svc.Heartbeat(ctx, holder1, m.ID)
		must(t, err)
		if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("sweep while beating: %d, %v", n, err)
		}
	}
	if got := w.get(t, m.ID); got.State != mandate.StateActive || !got.Live(w.clock.Now()) {
		t.Fatalf("beating session = %+v", got)
	}
	if len(w.revoked.list()) != 0 {
		t.Fatal("a grant was revoked while the holder was present")
	}

	w.clock.Advance(15 * time.Second) // the phone went quiet
	if _, err := w.svc.Heartbeat(ctx, holder1, m.ID); !errors.Is(err, mandate.ErrConflict) {
		t.Fatalf("heartbeat on a lapsed lease: %v", err)
	}
	n, err := w.svc.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep after the lapse: %d, %v", n, err)
	}
	got := w.get(t, m.ID)
	if got.State != mandate.StateEnded || got.EndReason != mandate.EndedByPresence || got.EndedBy != "" {
		t.Fatalf("lapsed session = %+v", got)
	}
	if !slices.Equal(w.revoked.list(), []string{"grant-7"}) {
		t.Fatalf("revoked grants = %v", w.revoked.list())
	}
	evs := w.mandateEvents(t, m.ID)
	if last := evs[len(evs)-1]; last != (ev{audit.ActionMandateEnded, audit.OutcomeSuccess, "system:", "ended by presence_lost"}) {
		t.Fatalf("last event = %v", last)
	}
	if len(evs) != 4 {
		t.Fatalf("heartbeats were audited: %v", evs)
	}
}

func TestApprovedSessionWithoutHeartbeatEndsBeforeItsFirstToken(t *testing.T) {
	w := newWorld(t)
	m := w.approved(t)
	w.clock.Advance(15 * time.Second)
	_, err := w.svc.Activate(t.Context(), m.ID, "grant-1", "")
	wantErr(t, err, mandate.ErrConflict)
	if n, err := w.svc.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if got := w.get(t, m.ID); got.State != mandate.StateEnded || got.EndReason != mandate.EndedByPresence || got.GrantID != "" {
		t.Fatalf("mandate = %+v", got)
	}
	if len(w.revoked.list()) != 0 {
		t.Fatalf("a grant-less mandate revoked %v", w.revoked.list())
	}
}

func TestLeaveEndsAtOnce(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.active(t, "grant-1")
	_, err := w.svc.Leave(ctx, holder2, m.ID, "")
	wantErr(t, err, mandate.ErrNotFound)
	m, err = w.svc.Leave(ctx, holder1, m.ID, "req-9")
	must(t, err)
	if m.State != mandate.StateEnded || m.EndReason != mandate.EndedByPresence || m.EndedBy != holder1 {
		t.Fatalf("left mandate = %+v", m)
	}
	if !slices.Equal(w.revoked.list(), []string{"grant-1"}) {
		t.Fatalf("revoked = %v", w.revoked.list())
	}
	_, err = w.svc.Leave(ctx, holder1, m.ID, "")
	wantErr(t, err, mandate.ErrConflict)
	// A request has no presence to leave.
	r := w.request(t, session())
	_, err = w.svc.Leave(ctx, holder1, r.ID, "")
	wantErr(t, err, mandate.ErrInvalidTransition)
}

func TestWhoMayEndForWhichReason(t *testing.T) {
	holder := func(id string) mandate.Actor { return mandate.Actor{Kind: "holder", ID: id} }
	staff := func(id string) mandate.Actor { return mandate.Actor{Kind: "staff", ID: id} }
	system := mandate.Actor{Kind: "system"}
	tests := []struct {
		name   string
		reason mandate.EndReason
		by     mandate.Actor
		// before ending: how long the clock moves (past the lease or the window)
		wait    time.Duration
		want    error // nil when it ends
		endedBy string
	}{
		{"the holder", mandate.EndedByHolder, holder(holder1), 0, nil, holder1},
		{"another holder as holder", mandate.EndedByHolder, holder(holder2), 0, mandate.ErrNotFound, ""},
		{"the delegate as holder", mandate.EndedByHolder, staff(mediator), 0, mandate.ErrNotFound, ""},
		{"the delegate", mandate.EndedByDelegate, staff(mediator), 0, nil, mediator},
		{"a colleague as delegate", mandate.EndedByDelegate, staff(colleague), 0, mandate.ErrNotFound, ""},
		{"the holder as delegate", mandate.EndedByDelegate, holder(holder1), 0, mandate.ErrNotFound, ""},
		{"an admin", mandate.EndedByAdmin, staff(admin), 0, nil, admin},
		{"a holder as admin", mandate.EndedByAdmin, holder(holder1), 0, mandate.ErrNotFound, ""},
		{"offboarding by an admin", mandate.EndedByOffboarding, staff(admin), 0, nil, admin},
		{"offboarding by the system", mandate.EndedByOffboarding, system, 0, nil, ""},
		{"offboarding by a holder", mandate.EndedByOffboarding, holder(holder1), 0, mandate.ErrInvalidRequest, ""},
		{"expiry before the end", mandate.EndedByExpiry, system, 0, mandate.ErrConflict, ""},
		{"expiry after the end", mandate.EndedByExpiry, system, 30 * time.Minute, nil, ""},
		{"expiry by staff", mandate.EndedByExpiry, staff(admin), 30 * time.Minute, mandate.ErrInvalidRequest, ""},
		{"presence loss while present", mandate.EndedByPresence, system, 0, mandate.ErrConflict, ""},
		{"presence loss after the lapse", mandate.EndedByPresence, system, 15 * time.Second, nil, ""},
		{"presence loss told by the holder", mandate.EndedByPresence, holder(holder1), 0, nil, holder1},
		{"presence loss told by another holder", mandate.EndedByPresence, holder(holder2), 0, mandate.ErrNotFound, ""},
		{"presence loss told by staff", mandate.EndedByPresence, staff(mediator), 15 * time.Second, mandate.ErrInvalidRequest, ""},
		{"an unknown reason", "bored", staff(mediator), 0, mandate.ErrInvalidRequest, ""},
		{"no reason", "", staff(mediator), 0, mandate.ErrInvalidRequest, ""},
	}
	w := newWorld(t) // each case on its own mandate
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grant := fmt.Sprintf("grant-%d", i)
			m := w.active(t, grant)
			revokedBefore := len(w.revoked.list())
			w.clock.Advance(tt.wait)
			before := len(w.mandateEvents(t, m.ID))
			got, err := w.svc.End(t.Context(), m.ID, tt.reason, tt.by, "req-end")
			evs := w.mandateEvents(t, m.ID)
			if len(evs) != before+1 {
				t.Fatalf("events %v, want one more than %d", evs, before)
			}
			last := evs[len(evs)-1]
			if tt.want != nil {
				wantErr(t, err, tt.want)
				if after := w.get(t, m.ID); after.State != mandate.StateActive || after.Version != m.Version {
					t.Fatalf("refused end changed the mandate: %+v", after)
				}
				if last.Outcome != audit.OutcomeDenied || last.Action != audit.ActionMandateRequestDenied || !strings.HasPrefix(last.Reason, "end refused: ") {
					t.Fatalf("refusal recorded as %v", last)
				}
				if len(w.revoked.list()) != revokedBefore {
					t.Fatal("a refused end revoked the grant")
				}
				return
			}
			must(t, err)
			if got.State != mandate.StateEnded || got.EndReason != tt.reason || got.EndedBy != tt.endedBy {
				t.Fatalf("ended mandate = %+v", got)
			}
			if last.Action != audit.ActionMandateEnded || last.Outcome != audit.OutcomeSuccess || last.Reason != "ended by "+string(tt.reason) {
				t.Fatalf("end recorded as %v", last)
			}
			if got := w.revoked.list()[revokedBefore:]; !slices.Equal(got, []string{grant}) {
				t.Fatalf("revoked = %v, want %s", got, grant)
			}
			_, err = w.svc.End(t.Context(), m.ID, tt.reason, tt.by, "")
			wantErr(t, err, mandate.ErrConflict)
		})
	}
}

func TestRequestsAreCancelledNotEndedByTheHolder(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.request(t, session())
	_, err := w.svc.End(ctx, m.ID, mandate.EndedByHolder, mandate.Actor{Kind: "holder", ID: holder1}, "")
	wantErr(t, err, mandate.ErrInvalidTransition)
	got, err := w.svc.End(ctx, m.ID, mandate.EndedByDelegate, mandate.Actor{Kind: "staff", ID: mediator}, "")
	must(t, err)
	if got.State != mandate.StateEnded || got.EndReason != mandate.EndedByDelegate {
		t.Fatalf("cancelled request = %+v", got)
	}
}

func TestSomeoneElseIsAnsweredNotFound(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.request(t, session())
	_, err := w.svc.Approve(ctx, holder2, m.ID, mandate.Approval{RequestID: "evil-1"})
	wantErr(t, err, mandate.ErrNotFound)
	_, err = w.svc.Refuse(ctx, holder3, m.ID, "evil-2")
	wantErr(t, err, mandate.ErrNotFound)
	if got := w.get(t, m.ID); got.State != mandate.StateRequested || got.Version != 1 {
		t.Fatalf("mandate after a stranger's answers = %+v", got)
	}
	m, err = w.svc.Approve(ctx, holder1, m.ID, mandate.Approval{})
	must(t, err)
	_, err = w.svc.Heartbeat(ctx, holder2, m.ID)
	wantErr(t, err, mandate.ErrNotFound)
	if got := w.get(t, m.ID); !got.LeaseUntil.Equal(m.LeaseUntil) {
		t.Fatalf("a stranger's heartbeat moved the lease: %s", got.LeaseUntil)
	}
	// Unknown mandates answer the same.
	_, err = w.svc.Approve(ctx, holder2, "no-such-mandate", mandate.Approval{})
	wantErr(t, err, mandate.ErrNotFound)
	_, err = w.svc.Heartbeat(ctx, holder2, "no-such-mandate")
	wantErr(t, err, mandate.ErrNotFound)

	// The holder's history shows the attempts on their mandate.
	wantEvents(t, w.events(t, audit.Filter{Holder: holder1, Outcome: audit.OutcomeDenied}), []ev{
		denied("holder:"+holder2, "approve refused: not the holder of this mandate"),
		denied("holder:"+holder3, "refuse refused: not the holder of this mandate"),
		denied("holder:"+holder2, "heartbeat refused: not the holder of this mandate"),
	})
	wantEvents(t, w.events(t, audit.Filter{Actor: holder2, Outcome: audit.OutcomeDenied}), []ev{
		denied("holder:"+holder2, "approve refused: not the holder of this mandate"),
		denied("holder:"+holder2, "heartbeat refused: not the holder of this mandate"),
		denied("holder:"+holder2, "approve refused: unknown mandate"),
		denied("holder:"+holder2, "heartbeat refused: not the holder of this mandate"),
	})
}

func TestPolicyBoundsWhatMayBeAsked(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	p, err := w.svc.Policy(ctx, structure1)
	must(t, err)
	if !slices.Equal(p.AllowedScopes, mandate.DefaultPolicy(structure1).AllowedScopes) {
		t.Fatalf("policy before any edit = %+v", p)
	}
	_, err = w.svc.SetPolicy(ctx, mandate.Actor{Kind: "staff", ID: admin}, mandate.Policy{
		StructureID: structure1, AllowedScopes: []string{mandate.ScopeAuditWrite}, MaxSessionDuration: time.Hour, MaxDelegationDuration: 24 * time.Hour,
	})
	wantErr(t, err, mandate.ErrInvalidRequest)
	p, err = w.svc.SetPolicy(ctx, mandate.Actor{Kind: "staff", ID: admin}, mandate.Policy{
		StructureID: structure1, AllowedScopes: []string{mandate.ScopeMailRead, mandate.ScopeMailRead},
		MaxSessionDuration: 20 * time.Minute, MaxDelegationDuration: 2 * 24 * time.Hour,
	})
	must(t, err)
	if p.UpdatedBy != admin || !p.UpdatedAt.Equal(w.clock.Now()) || !slices.Equal(p.AllowedScopes, []string{mandate.ScopeMailRead}) {
		t.Fatalf("stored policy = %+v", p)
	}
	if got, err := w.svc.Policy(ctx, structure1); err != nil || got.MaxSessionDuration != 20*time.Minute {
		t.Fatalf("policy = %+v, %v", got, err)
	}
	wantEvents(t, w.events(t, audit.Filter{Structure: structure1, Actor: admin}), []ev{
		denied("staff:"+admin, "policy change refused: invalid mandate request: audit.write is a service scope"),
		{audit.ActionMandatePolicyChanged, audit.OutcomeSuccess, "staff:" + admin, "sessions up to 20m0s, delegations up to 48h0m0s, presence always required"},
	})

	with := func(f func(*mandate.Request)) mandate.Request {
		r := session()
		r.Scopes = []string{mandate.ScopeMailRead}
		r.Duration = 15 * time.Minute
		f(&r)
		return r
	}
	tests := []struct {
		name   string
		req    mandate.Request
		want   error
		reason string
	}{
		{"a scope the structure forbids", with(func(r *mandate.Request) { r.Scopes = []string{mandate.ScopeMailRead, mandate.ScopeMailSend} }),
			mandate.ErrPolicyScope, "refused by the structure's policy: scope(s) not allowed: mail.send"},
		{"a session too long here", with(func(r *mandate.Request) { r.Duration = 25 * time.Minute }),
			mandate.ErrPolicy, "refused by the structure's policy: a session lasts at most 20m0s here"},
		{"a session too short anywhere", with(func(r *mandate.Request) { r.Duration = time.Minute }),
			mandate.ErrInvalidRequest, "invalid mandate request: a session lasts at least 5m0s"},
		{"a relaxed session", with(func(r *mandate.Request) { r.Presence = mandate.PresenceRelaxed }),
			mandate.ErrPolicy, "refused by the structure's policy: an assisted session always needs the holder's presence"},
		{"a relaxed delegation here", with(func(r *mandate.Request) {
			r.Kind, r.Presence, r.PurposeCategory = mandate.KindDelegation, mandate.PresenceRelaxed, mandate.PurposeAbsence
			r.NotBefore, r.NotAfter = w.clock.Now(), w.clock.Now().Add(24*time.Hour)
		}), mandate.ErrPolicy, "refused by the structure's policy: this structure requires the holder's presence"},
		{"a delegation too long here", with(func(r *mandate.Request) {
			r.Kind, r.PurposeCategory = mandate.KindDelegation, mandate.PurposeAbsence
			r.NotBefore, r.NotAfter = w.clock.Now(), w.clock.Now().Add(3*24*time.Hour)
		}), mandate.ErrPolicy, "refused by the structure's policy: a delegation lasts at most 48h0m0s here"},
		{"a window already over", with(func(r *mandate.Request) {
			r.Kind, r.PurposeCategory = mandate.KindDelegation, mandate.PurposeAbsence
			r.NotBefore, r.NotAfter = w.clock.Now().Add(-48*time.Hour), w.clock.Now().Add(-time.Hour)
		}), mandate.ErrInvalidRequest, "the absence window is over"},
		{"an unknown scope", with(func(r *mandate.Request) { r.Scopes = []string{"mail.read", "mail.\x00burn"} }),
			mandate.ErrInvalidRequest, "unknown scope"},
		{"an unknown kind", with(func(r *mandate.Request) { r.Kind = "visit" }),
			mandate.ErrInvalidRequest, `invalid mandate request: unknown kind "visit"`},
		{"an unknown category", with(func(r *mandate.Request) { r.PurposeCategory = "fun" }),
			mandate.ErrInvalidRequest, "unknown purpose category"},
		{"a purpose too long", with(func(r *mandate.Request) { r.Purpose = strings.Repeat("é", 251) }),
			mandate.ErrInvalidRequest, "the purpose is longer than 500 bytes"},
		{"a purpose with control characters", with(func(r *mandate.Request) { r.Purpose = "CAF\x1b[2J" }),
			mandate.ErrInvalidRequest, "the purpose holds control characters"},
		{"too long to answer", with(func(r *mandate.Request) { r.AnswerWithin = 25 * time.Hour }),
			mandate.ErrInvalidRequest, "the time to answer is outside (0, 24h0m0s]"},
		{"no holder", with(func(r *mandate.Request) { r.HolderID = "" }),
			mandate.ErrInvalidRequest, "no holder named"},
		{"a holder of another structure", with(func(r *mandate.Request) { r.HolderID = holder3 }),
			mandate.ErrNotFound, "unknown holder, or not served by this structure"},
		{"an unknown mailbox", with(func(r *mandate.Request) { r.HolderID, r.HolderMailbox = "", "nobody@example.org" }),
			mandate.ErrNotFound, "unknown holder, or not served by this structure"},
		{"a deactivated delegate", with(func(r *mandate.Request) { r.DelegateID = gone }),
			mandate.ErrPolicy, "the delegate's account is not active"},
		{"a delegate of another structure", with(func(r *mandate.Request) { r.DelegateID = outsider }),
			mandate.ErrPolicy, "the delegate does not belong to this structure"},
		{"an unknown delegate", with(func(r *mandate.Request) { r.DelegateID = "st-nobody" }),
			mandate.ErrNotFound, "unknown delegate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(w.events(t, audit.Filter{Action: audit.ActionMandateRequestDenied}))
			_, err := w.svc.Request(ctx, tt.req)
			wantErr(t, err, tt.want)
			if errors.Is(err, mandate.ErrPolicyScope) != (tt.want == mandate.ErrPolicyScope) {
				t.Fatalf("error %v: wraps ErrPolicyScope %v", err, errors.Is(err, mandate.ErrPolicyScope))
			}
			evs := w.events(t, audit.Filter{Action: audit.ActionMandateRequestDenied})
			if len(evs) != before+1 {
				t.Fatalf("denied events %d, want %d", len(evs), before+1)
			}
			want := denied("staff:"+tt.req.DelegateID, "request refused: "+tt.reason)
			if last := evs[len(evs)-1]; last != want {
				t.Fatalf("recorded %v\n     want %v", last, want)
			}
		})
	}
	all, err := w.svc.List(ctx, mandate.Query{StructureID: structure1})
	must(t, err)
	if len(all) != 0 {
		t.Fatalf("refused requests were stored: %+v", all)
	}
	// What the policy allows still works.
	w.request(t, with(func(*mandate.Request) {}))
}

func TestNothingChangesWhenTheRecordFails(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	requested := w.request(t, session())
	approved := w.approved(t)
	active := w.active(t, "grant-1")
	lapsing := w.approved(t)
	stateOf := func() []mandate.Mandate {
		var out []mandate.Mandate
		for _, m := range []mandate.Mandate{requested, approved, active, lapsing} {
			out = append(out, w.get(t, m.ID))
		}
		return out
	}
	before := stateOf()
	eventsBefore := w.events(t, audit.Filter{})
	watchedBefore := w.watched.count(active.ID)

	w.rec.failing.Store(true)
	noRecord := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "refuses writes") {
			t.Fatalf("%s while the log refuses writes: %v", what, err)
		}
	}
	_, err := w.svc.Request(ctx, session())
	noRecord("request", err)
	_, err = w.svc.Approve(ctx, holder1, requested.ID, mandate.Approval{})
	noRecord("approve", err)
	_, err = w.svc.Refuse(ctx, holder1, requested.ID, "")
	noRecord("refuse", err)
	_, err = w.svc.Activate(ctx, approved.ID, "grant-2", "")
	noRecord("activate", err)
	_, err = w.svc.End(ctx, active.ID, mandate.EndedByHolder, mandate.Actor{Kind: "holder", ID: holder1}, "")
	noRecord("end", err)
	_, err = w.svc.Leave(ctx, holder1, active.ID, "")
	noRecord("leave", err)
	n, err := w.svc.EndAllOfDelegate(ctx, mediator, mandate.EndedByOffboarding, mandate.Actor{Kind: "system"})
	if n != 0 {
		t.Fatalf("ended %d mandates without records", n)
	}
	noRecord("offboarding", err)
	_, err = w.svc.SetPolicy(ctx, mandate.Actor{Kind: "staff", ID: admin}, mandate.DefaultPolicy(structure1))
	noRecord("set policy", err)
	// The lapsing lease must end, but cannot be recorded: it stays.
	w.clock.Advance(time.Minute)
	_, err = w.svc.Heartbeat(ctx, holder1, active.ID)
	wantErr(t, err, mandate.ErrConflict)
	n, err = w.svc.Sweep(ctx)
	if n != 0 {
		t.Fatalf("swept %d mandates without records", n)
	}
	noRecord("sweep", err)

	if after := stateOf(); !slices.EqualFunc(before, after, func(a, b mandate.Mandate) bool {
		return a.Version == b.Version && a.State == b.State && a.LeaseUntil.Equal(b.LeaseUntil) && a.GrantID == b.GrantID
	}) {
		t.Fatalf("mandates changed without records:\nbefore %+v\n after %+v", before, after)
	}
	if _, err := w.store.GetPolicy(ctx, structure1); !errors.Is(err, mandate.ErrNotFound) {
		t.Fatalf("policy stored without a record: %v", err)
	}
	if all, _ := w.svc.List(ctx, mandate.Query{}); len(all) != 4 {
		t.Fatalf("%d mandates, want the 4 from before", len(all))
	}
	if len(w.revoked.list()) != 0 || w.watched.count(active.ID) != watchedBefore {
		t.Fatal("revocations or watchers ran for steps that did not happen")
	}
	if got := w.events(t, audit.Filter{}); len(got) != len(eventsBefore) {
		t.Fatalf("events appeared: %v", got[len(eventsBefore):])
	}

	// Once the log records again, the same steps go through.
	w.rec.failing.Store(false)
	n, err = w.svc.Sweep(ctx)
	if err != nil || n != 3 {
		t.Fatalf("sweep once the log works: %d, %v", n, err) // the three approved or active leases lapsed
	}
	if _, err := w.svc.Refuse(ctx, holder1, requested.ID, ""); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAnswersOneWins(t *testing.T) {
	for _, b := range backends {
		for _, replicas := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d replica(s)", b.name, replicas), func(t *testing.T) {
				testConcurrentAnswers(t, newWorldOn(t, b.open), replicas)
			})
		}
	}
}

func testConcurrentAnswers(t *testing.T, w *world, replicas int) {
	other := w.svc
	if replicas == 2 {
		other = w.service(t, mandate.ServiceConfig{})
	}
	for i := range 10 {
		m := w.request(t, session())
		var approveErr, refuseErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, approveErr = w.svc.Approve(t.Context(), holder1, m.ID, mandate.Approval{})
		})
		wg.Go(func() {
			<-start
			_, refuseErr = other.Refuse(t.Context(), holder1, m.ID, "")
		})
		close(start)
		wg.Wait()
		got := w.get(t, m.ID)
		switch {
		case approveErr == nil && refuseErr == nil:
			t.Fatalf("round %d: both answers won", i)
		case approveErr == nil:
			wantErr(t, refuseErr, mandate.ErrConflict)
			if got.State != mandate.StateApproved {
				t.Fatalf("round %d: approve won, state %s", i, got.State)
			}
		case refuseErr == nil:
			wantErr(t, approveErr, mandate.ErrConflict)
			if got.State != mandate.StateRefused {
				t.Fatalf("round %d: refuse won, state %s", i, got.State)
			}
		default:
			t.Fatalf("round %d: both lost: %v / %v", i, approveErr, refuseErr)
		}
		if got.Version != 2 {
			t.Fatalf("round %d: version %d, want 2 (one write)", i, got.Version)
		}
		// The log tells the same story: every answer recorded as
		// done and not undone is the one that won.
		var done []audit.Action
		for _, e := range w.mandateEvents(t, m.ID) {
			switch {
			case e.Outcome == audit.OutcomeSuccess && e.Action != audit.ActionMandateRequested:
				done = append(done, e.Action)
			case strings.Contains(e.Reason, "not applied"):
				if len(done) == 0 {
					t.Fatalf("round %d: an undo without a step", i)
				}
				loser := audit.ActionMandateApproved
				if strings.HasPrefix(e.Reason, "refuse") {
					loser = audit.ActionMandateRefused
				}
				done = slices.DeleteFunc(done, func(a audit.Action) bool { return a == loser })
			}
		}
		want := audit.ActionMandateApproved
		if got.State == mandate.StateRefused {
			want = audit.ActionMandateRefused
		}
		if !slices.Equal(done, []audit.Action{want}) {
			t.Fatalf("round %d: the log says %v happened, the store says %s", i, done, got.State)
		}
	}
}

func TestDelegationWindow(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	_, err := w.svc.SetPolicy(ctx, mandate.Actor{Kind: "staff", ID: admin}, mandate.Policy{
		StructureID: structure1, AllowedScopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend},
		MaxSessionDuration: time.Hour, MaxDelegationDuration: 14 * 24 * time.Hour, AllowRelaxedPresence: true,
	})
	must(t, err)
	from, to := w.clock.Now().Add(24*time.Hour), w.clock.Now().Add(4*24*time.Hour)
	m := w.request(t, mandate.Request{
		Kind: mandate.KindDelegation, StructureID: structure1, HolderID: holder2, DelegateID: colleague, ClientID: client,
		Scopes: []string{mandate.ScopeMailRead}, PurposeCategory: mandate.PurposeAbsence, Purpose: "Congés",
		Presence: mandate.PresenceRelaxed, NotBefore: from, NotAfter: to,
	})
	if !m.NotBefore.Equal(from) || !m.NotAfter.Equal(to) || m.Duration != 3*24*time.Hour {
		t.Fatalf("delegation = %+v", m)
	}
	m, err = w.svc.Approve(ctx, holder2, m.ID, mandate.Approval{})
	must(t, err)
	if !m.NotBefore.Equal(from) || !m.NotAfter.Equal(to) || !m.LeaseUntil.IsZero() {
		t.Fatalf("approval moved the window or started a lease: %+v", m)
	}
	if m.Live(w.clock.Now()) {
		t.Fatal("live before its window")
	}
	// The colleague's client takes its grant at once, ahead of the
	// absence: active, but not live before the window opens.
	m, err = w.svc.Activate(ctx, m.ID, "grant-d", "")
	must(t, err)
	if m.State != mandate.StateActive || m.Live(w.clock.Now()) {
		t.Fatalf("activated ahead of its window: %+v", m)
	}
	_, err = w.svc.Activate(ctx, m.ID, "grant-d", "")
	wantErr(t, err, mandate.ErrConflict) // once only
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before the window: %d, %v", n, err)
	}

	w.clock.Advance(24 * time.Hour)
	if !w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatal("not live inside its window")
	}
	w.clock.Advance(3*24*time.Hour - time.Microsecond)
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep inside the window: %d, %v", n, err)
	}
	if !w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatal("not live at the window's last instant")
	}
	w.clock.Advance(time.Microsecond)
	if w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatal("live at the window's end")
	}
	if n, err := w.svc.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep at the window's end: %d, %v", n, err)
	}
	got := w.get(t, m.ID)
	if got.State != mandate.StateEnded || got.EndReason != mandate.EndedByExpiry {
		t.Fatalf("delegation after its window = %+v", got)
	}
	if !slices.Equal(w.revoked.list(), []string{"grant-d"}) {
		t.Fatalf("revoked = %v", w.revoked.list())
	}
	wantEvents(t, w.mandateEvents(t, m.ID), []ev{
		{audit.ActionMandateRequested, audit.OutcomeSuccess, "staff:" + colleague, ""},
		{audit.ActionMandateApproved, audit.OutcomeSuccess, "holder:" + holder2, ""},
		{audit.ActionMandateActivated, audit.OutcomeSuccess, "staff:" + colleague, ""},
		denied("staff:"+colleague, "activate refused: the mandate is active"),
		{audit.ActionMandateEnded, audit.OutcomeSuccess, "system:", "ended by expiry"},
	})
}

func TestActivateOnlyOnce(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	r := w.request(t, session())
	_, err := w.svc.Activate(ctx, r.ID, "grant-0", "")
	wantErr(t, err, mandate.ErrInvalidTransition)

	m := w.approved(t)
	_, err = w.svc.Activate(ctx, m.ID, "", "")
	wantErr(t, err, mandate.ErrInvalidRequest)
	_, err = w.svc.Activate(ctx, m.ID, "grant-1", "")
	must(t, err)
	_, err = w.svc.Activate(ctx, m.ID, "grant-2", "")
	wantErr(t, err, mandate.ErrInvalidTransition)
	if got := w.get(t, m.ID); got.GrantID != "grant-1" || got.Version != 3 {
		t.Fatalf("mandate after a second activation = %+v", got)
	}
	_, err = w.svc.Activate(ctx, "no-such-mandate", "grant-3", "")
	wantErr(t, err, mandate.ErrNotFound)
}

func TestOffboardingEndsEveryOpenMandateOfTheDelegate(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	requested := w.request(t, session())
	approved := w.approved(t)
	active := w.active(t, "grant-a")
	ended := w.active(t, "grant-e")
	_, err := w.svc.End(ctx, ended.ID, mandate.EndedByDelegate, mandate.Actor{Kind: "staff", ID: mediator}, "")
	must(t, err)
	req := session()
	req.DelegateID = colleague
	colleagues := w.request(t, req)

	n, err := w.svc.EndAllOfDelegate(ctx, mediator, mandate.EndedByOffboarding, mandate.Actor{Kind: "staff", ID: admin})
	must(t, err)
	if n != 3 {
		t.Fatalf("ended %d, want 3", n)
	}
	for _, m := range []mandate.Mandate{requested, approved, active} {
		if got := w.get(t, m.ID); got.State != mandate.StateEnded || got.EndReason != mandate.EndedByOffboarding || got.EndedBy != admin {
			t.Fatalf("mandate after offboarding = %+v", got)
		}
	}
	if got := w.get(t, ended.ID); got.EndReason != mandate.EndedByDelegate {
		t.Fatalf("an ended mandate was ended again: %+v", got)
	}
	if got := w.get(t, colleagues.ID); got.State != mandate.StateRequested {
		t.Fatalf("a colleague's mandate was ended: %+v", got)
	}
	if got := w.revoked.list(); !slices.Equal(got, []string{"grant-e", "grant-a"}) {
		t.Fatalf("revoked = %v", got)
	}
	if n, err := w.svc.EndAllOfDelegate(ctx, mediator, mandate.EndedByOffboarding, mandate.Actor{Kind: "system"}); err != nil || n != 0 {
		t.Fatalf("second offboarding: %d, %v", n, err)
	}
}

func TestSweepWorksInBatches(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	const count = 130 // more than one batch of 100
	for range count {
		w.request(t, session())
	}
	w.clock.Advance(10 * time.Minute)
	n, err := w.svc.Sweep(ctx)
	if err != nil || n != count {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	left, err := w.svc.List(ctx, mandate.Query{States: []mandate.State{mandate.StateRequested}})
	must(t, err)
	if len(left) != 0 {
		t.Fatalf("%d requests left", len(left))
	}
}

func TestRunSweepsUntilCancelled(t *testing.T) {
	w := newWorld(t)
	m := w.approved(t)
	w.clock.Advance(time.Minute)
	drain(w.watched.ch)
	if err := w.svc.Run(t.Context(), 0); err == nil {
		t.Fatal("Run with no interval")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.svc.Run(ctx, time.Hour) }()
	select {
	case id := <-w.watched.ch: // Run sweeps as it starts
		if id != m.ID {
			t.Fatalf("changed %s, want %s", id, m.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not sweep")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := w.get(t, m.ID); got.State != mandate.StateEnded {
		t.Fatalf("state %s", got.State)
	}
}

func drain(ch chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestListPages(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	var ids []string
	for range 5 {
		ids = append(ids, w.request(t, session()).ID)
		w.clock.Advance(time.Second)
	}
	page, err := w.svc.List(ctx, mandate.Query{HolderID: holder1, Limit: 3})
	must(t, err)
	last := page[len(page)-1]
	rest, err := w.svc.List(ctx, mandate.Query{HolderID: holder1, Limit: 3, BeforeCreated: last.CreatedAt, BeforeID: last.ID})
	must(t, err)
	var got []string
	for _, m := range append(page, rest...) {
		got = append(got, m.ID)
	}
	slices.Reverse(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("pages %v, want %v", got, ids)
	}
	_, err = w.svc.List(ctx, mandate.Query{Limit: 501})
	wantErr(t, err, mandate.ErrInvalidRequest)
	_, err = w.svc.Get(ctx, "no-such-mandate")
	wantErr(t, err, mandate.ErrNotFound)
}

func TestNewServiceChecksItsConfiguration(t *testing.T) {
	w := newWorld(t)
	deps := mandate.Deps{Store: w.store, Dir: w.dir, Revoker: w.revoked, Recorder: w.rec, Clock: w.clock}
	svc, err := mandate.NewService(deps, mandate.ServiceConfig{})
	must(t, err)
	if c := svc.Config(); c.AnswerWithin != 10*time.Minute || c.LeaseLapse != 15*time.Second || c.ConsentVersion != "2026-11" {
		t.Fatalf("defaults = %+v", c)
	}
	if _, err := mandate.NewService(deps, mandate.ServiceConfig{ConsentVersion: "1999-01"}); err == nil {
		t.Fatal("an unknown consent version was accepted")
	}
	noRevoker := deps
	noRevoker.Revoker = nil
	if _, err := mandate.NewService(noRevoker, mandate.ServiceConfig{}); err == nil {
		t.Fatal("a service without a revoker was built")
	}
	// A shorter lease lapses sooner.
	quick := w.service(t, mandate.ServiceConfig{LeaseLapse: 3 * time.Second})
	m, err := quick.Request(t.Context(), session())
	must(t, err)
	m, err = quick.Approve(t.Context(), holder1, m.ID, mandate.Approval{})
	must(t, err)
	if !m.LeaseUntil.Equal(w.clock.Now().Add(3 * time.Second)) {
		t.Fatalf("lease until %s", m.LeaseUntil)
	}
}

func TestHolderMayOptInToPersonalMessages(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	m := w.request(t, session())
	m, err := w.svc.Approve(ctx, holder1, m.ID, mandate.Approval{IncludePersonal: true})
	must(t, err)
	stored := w.get(t, m.ID)
	if len(stored.Exclusions) != 0 {
		t.Fatalf("exclusions after opting in = %v", stored.Exclusions)
	}
	holder, _ := w.dir.Holder(ctx, structure1, holder1)
	delegate, _ := w.dir.Delegate(ctx, mediator)
	r := mandate.NewReceipt(stored, holder, delegate, "France Services Tulle", stored.ConsentVersion, stored.DecidedAt)
	if r.Hash() != stored.ConsentHash || len(r.Exclusions) != 0 {
		t.Fatalf("receipt %s does not match the stored hash %s", r.Canonical(), stored.ConsentHash)
	}
}

func TestTwoReplicasSweepTogether(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testTwoReplicasSweep(t, newWorldOn(t, b.open)) })
	}
}

func testTwoReplicasSweep(t *testing.T, w *world) {
	other := w.service(t, mandate.ServiceConfig{})
	const count = 20
	var ids []string
	for i := range count {
		ids = append(ids, w.active(t, fmt.Sprintf("grant-%d", i)).ID)
	}
	w.clock.Advance(time.Minute) // every lease lapsed
	var moved [2]int
	var errs [2]error
	var wg sync.WaitGroup
	for i, svc := range []*mandate.Service{w.svc, other} {
		wg.Go(func() { moved[i], errs[i] = svc.Sweep(t.Context()) })
	}
	wg.Wait()
	must(t, errors.Join(errs[:]...))
	if moved[0]+moved[1] != count {
		t.Fatalf("replicas moved %v, want %d in all", moved, count)
	}
	revoked := w.revoked.list()
	slices.Sort(revoked)
	if len(slices.Compact(slices.Clone(revoked))) != count || len(revoked) != count {
		t.Fatalf("revoked %v, want each of the %d grants once", revoked, count)
	}
	for _, id := range ids {
		if got := w.get(t, id); got.State != mandate.StateEnded || got.EndReason != mandate.EndedByPresence {
			t.Fatalf("mandate after the sweeps = %+v", got)
		}
		ends := 0
		for _, e := range w.mandateEvents(t, id) {
			switch {
			case e.Action == audit.ActionMandateEnded && e.Outcome == audit.OutcomeSuccess:
				ends++
			case e.Reason == "sweep not applied: the mandate changed meanwhile":
				ends--
			case e.Outcome == audit.OutcomeDenied:
				t.Fatalf("mandate %s: %v", id, e)
			}
		}
		if ends != 1 {
			t.Fatalf("mandate %s ended %d times in the log", id, ends)
		}
	}
}

func TestReceiptIsKeptAsApprovedWhenPeopleAreRenamed(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	approved := w.approved(t)
	must(t, w.store.UpdateHolder(ctx, holder1, func(h *people.Holder) error { h.DisplayName = "Awa Diallo-Sow"; return nil }))
	must(t, w.store.UpdateStaff(ctx, mediator, func(s *people.Staff) error { s.DisplayName = "Marie Skłodowska-Curie"; return nil }))
	holder, err := w.dir.Holder(ctx, structure1, holder1)
	must(t, err)
	delegate, err := w.dir.Delegate(ctx, mediator)
	must(t, err)
	if mandate.NewReceipt(approved, holder, delegate, "France Services Tulle", approved.ConsentVersion, approved.DecidedAt).Hash() == approved.ConsentHash {
		t.Fatal("a receipt rebuilt after the renames has the same hash: the renames changed nothing")
	}
	// Later steps keep the receipt as it was approved.
	_, err = w.svc.Activate(ctx, approved.ID, "grant-r", "")
	must(t, err)
	_, err = w.svc.End(ctx, approved.ID, mandate.EndedByHolder, mandate.Actor{Kind: "holder", ID: holder1}, "")
	must(t, err)
	got := w.get(t, approved.ID)
	sum := sha256.Sum256(got.ConsentReceipt)
	if hex.EncodeToString(sum[:]) != approved.ConsentHash || got.ConsentHash != approved.ConsentHash {
		t.Fatalf("stored receipt %s no longer hashes to %s", got.ConsentReceipt, approved.ConsentHash)
	}
	r, err := mandate.ParseReceipt(got.ConsentReceipt)
	must(t, err)
	if r.HolderName != "Awa Diallo" || r.DelegateName != "Marie Curie" || r.StructureName != "France Services Tulle" ||
		r.MandateID != approved.ID || r.Hash() != approved.ConsentHash || !r.ApprovedAt.Equal(approved.DecidedAt.Truncate(time.Second)) {
		t.Fatalf("stored receipt = %+v", r)
	}
}

// presenceDelegation asks for a colleague's delegation on holder2's
// mailbox that needs holder2's presence, for the window from..to.
func (w *world) presenceDelegation(t *testing.T, from, to time.Time) mandate.Mandate {
	t.Helper()
	return w.request(t, mandate.Request{
		Kind: mandate.KindDelegation, StructureID: structure1, HolderID: holder2, DelegateID: colleague, ClientID: client,
		Scopes: []string{mandate.ScopeMailRead}, PurposeCategory: mandate.PurposeAbsence, Purpose: "Congés",
		Presence: mandate.PresenceRequired, NotBefore: from, NotAfter: to,
	})
}

// TestDelegationWithPresenceLivesForItsWindow: a delegation that needs the
// holder's presence is approved ahead of its window and lives until the
// window closes; the holder's presence (StartPresence, heartbeats, Leave)
// gates only its tokens (Live), and the sweep never ends it for a lapsed
// lease.
func TestDelegationWithPresenceLivesForItsWindow(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	from, to := w.clock.Now().Add(24*time.Hour), w.clock.Now().Add(4*24*time.Hour)
	m := w.presenceDelegation(t, from, to)
	m, err := w.svc.Approve(ctx, holder2, m.ID, mandate.Approval{RequestID: "req-a"})
	must(t, err)
	if m.State != mandate.StateApproved || !m.LeaseUntil.IsZero() || !m.NotBefore.Equal(from) {
		t.Fatalf("approved ahead of its window: %+v", m)
	}
	_, err = w.svc.StartPresence(ctx, holder2, m.ID, "")
	wantErr(t, err, mandate.ErrConflict)
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before the window: %d, %v", n, err)
	}

	// Inside its window with nobody present: alive, not live.
	w.clock.Advance(24 * time.Hour)
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep inside the window, nobody present: %d, %v", n, err)
	}
	if got := w.get(t, m.ID); got.State != mandate.StateApproved || got.Live(w.clock.Now()) {
		t.Fatalf("inside its window before any presence: %+v", got)
	}
	// The client may take its grant now; its tokens wait for the holder.
	_, err = w.svc.Activate(ctx, m.ID, "grant-d", "")
	must(t, err)
	if w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatal("live with nobody present")
	}

	// "Je suis disponible": the lease starts, the tokens may be used.
	until, err := w.svc.StartPresence(ctx, holder2, m.ID, "req-p1")
	must(t, err)
	if !until.Equal(w.clock.Now().Add(15*time.Second)) || !w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatalf("after StartPresence: lease until %s, live %v", until, w.get(t, m.ID).Live(w.clock.Now()))
	}
	w.clock.Advance(10 * time.Second)
	_, err = w.svc.Heartbeat(ctx, holder2, m.ID)
	must(t, err)

	// Heartbeats stop: the tokens stop, the delegation goes on.
	w.clock.Advance(16 * time.Second)
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep after the lease lapsed: %d, %v", n, err)
	}
	got := w.get(t, m.ID)
	if got.State != mandate.StateActive || got.Live(w.clock.Now()) || len(w.revoked.list()) != 0 {
		t.Fatalf("after the lease lapsed: %+v, revoked %v", got, w.revoked.list())
	}
	_, err = w.svc.Heartbeat(ctx, holder2, m.ID)
	wantErr(t, err, mandate.ErrConflict)

	// Present again, then the page closes: only the lease ends.
	_, err = w.svc.StartPresence(ctx, holder2, m.ID, "req-p2")
	must(t, err)
	if !w.get(t, m.ID).Live(w.clock.Now()) {
		t.Fatal("not live after the holder started their presence again")
	}
	left, err := w.svc.Leave(ctx, holder2, m.ID, "req-l")
	must(t, err)
	if left.State != mandate.StateActive || !left.LeaseUntil.Equal(w.clock.Now()) || left.Live(w.clock.Now()) || left.EndReason != "" {
		t.Fatalf("after leaving: %+v", left)
	}
	_, err = w.svc.Heartbeat(ctx, holder2, m.ID)
	wantErr(t, err, mandate.ErrConflict)
	// Leaving again (a second page, a late beacon) changes and records nothing.
	again, err := w.svc.Leave(ctx, holder2, m.ID, "")
	must(t, err)
	if again.Version != left.Version {
		t.Fatalf("a second leave wrote: version %d → %d", left.Version, again.Version)
	}
	if n, err := w.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep after leaving: %d, %v", n, err)
	}

	// Nobody else starts or ends the holder's presence.
	_, err = w.svc.StartPresence(ctx, holder1, m.ID, "")
	wantErr(t, err, mandate.ErrNotFound)
	_, err = w.svc.Leave(ctx, holder1, m.ID, "")
	wantErr(t, err, mandate.ErrNotFound)
	// A presence step whose record fails does not happen.
	w.rec.failing.Store(true)
	_, err = w.svc.StartPresence(ctx, holder2, m.ID, "")
	w.rec.failing.Store(false)
	if err == nil || w.get(t, m.ID).Version != left.Version {
		t.Fatalf("StartPresence without its record: %v, version %d", err, w.get(t, m.ID).Version)
	}

	// The window closes: expiry, as for any mandate.
	_, err = w.svc.StartPresence(ctx, holder2, m.ID, "req-p3")
	must(t, err)
	w.clock.Advance(to.Sub(w.clock.Now()))
	if n, err := w.svc.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep at the window's end: %d, %v", n, err)
	}
	if got := w.get(t, m.ID); got.State != mandate.StateEnded || got.EndReason != mandate.EndedByExpiry {
		t.Fatalf("after the window: %+v", got)
	}
	if !slices.Equal(w.revoked.list(), []string{"grant-d"}) {
		t.Fatalf("revoked = %v", w.revoked.list())
	}
	_, err = w.svc.StartPresence(ctx, holder2, m.ID, "")
	wantErr(t, err, mandate.ErrConflict)

	h2, h1, col := "holder:"+holder2, "holder:"+holder1, "staff:"+colleague
	wantEvents(t, w.mandateEvents(t, m.ID), []ev{
		{audit.ActionMandateRequested, audit.OutcomeSuccess, col, ""},
		{audit.ActionMandateApproved, audit.OutcomeSuccess, h2, ""},
		denied(h2, "start presence refused: outside the delegation's window"),
		{audit.ActionMandateActivated, audit.OutcomeSuccess, col, ""},
		{audit.ActionMandatePresence, audit.OutcomeSuccess, h2, ""},
		{audit.ActionMandatePresence, audit.OutcomeSuccess, h2, ""},
		{audit.ActionMandatePresenceEnded, audit.OutcomeSuccess, h2, ""},
		denied(h1, "start presence refused: not the holder of this mandate"),
		denied(h1, "end presence refused: not the holder of this mandate"),
		{audit.ActionMandatePresence, audit.OutcomeSuccess, h2, ""},
		{audit.ActionMandateEnded, audit.OutcomeSuccess, "system:", "ended by expiry"},
		denied(h2, "start presence refused: the mandate is ended"),
	})
}

// TestDelegationApprovedInsideItsWindowStartsPresence: approving inside
// the window starts the lease at once; a delegation never ends for
// presence, but "Arrêter maintenant" ends it.
func TestDelegationApprovedInsideItsWindowStartsPresence(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	now := w.clock.Now()
	m := w.presenceDelegation(t, now, now.Add(48*time.Hour))
	m, err := w.svc.Approve(ctx, holder2, m.ID, mandate.Approval{})
	must(t, err)
	if !m.LeaseUntil.Equal(now.Add(15*time.Second)) || !m.Live(now) {
		t.Fatalf("approved inside its window: %+v", m)
	}
	_, err = w.svc.Activate(ctx, m.ID, "grant-w", "")
	must(t, err)
	w.clock.Advance(15 * time.Second)
	for _, by := range []mandate.Actor{{Kind: "system"}, {Kind: "holder", ID: holder2}} {
		_, err = w.svc.End(ctx, m.ID, mandate.EndedByPresence, by, "")
		wantErr(t, err, mandate.ErrConflict)
	}
	if got := w.get(t, m.ID); got.State != mandate.StateActive {
		t.Fatalf("a delegation ended for presence: %+v", got)
	}
	ended, err := w.svc.End(ctx, m.ID, mandate.EndedByHolder, mandate.Actor{Kind: "holder", ID: holder2}, "")
	must(t, err)
	if ended.State != mandate.StateEnded || ended.EndReason != mandate.EndedByHolder || !slices.Equal(w.revoked.list(), []string{"grant-w"}) {
		t.Fatalf("stopped: %+v, revoked %v", ended, w.revoked.list())
	}
	_, err = w.svc.Leave(ctx, holder2, m.ID, "")
	wantErr(t, err, mandate.ErrConflict)
}

// TestPresenceStartsOnlyForDelegationsThatNeedIt: a session's lease never
// starts again (its lapse ends it); a relaxed delegation has no lease.
func TestPresenceStartsOnlyForDelegationsThatNeedIt(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	s := w.active(t, "grant-s")
	w.clock.Advance(16 * time.Second)
	_, err := w.svc.StartPresence(ctx, holder1, s.ID, "")
	wantErr(t, err, mandate.ErrConflict)
	if got := w.get(t, s.ID); got.Version != s.Version || got.Live(w.clock.Now()) {
		t.Fatalf("a lapsed session started again: %+v", got)
	}
	_, err = w.svc.SetPolicy(ctx, mandate.Actor{Kind: "staff", ID: admin}, mandate.Policy{
		StructureID: structure1, AllowedScopes: []string{mandate.ScopeMailRead},
		MaxSessionDuration: time.Hour, MaxDelegationDuration: 14 * 24 * time.Hour, AllowRelaxedPresence: true,
	})
	must(t, err)
	r := w.request(t, mandate.Request{
		Kind: mandate.KindDelegation, StructureID: structure1, HolderID: holder2, DelegateID: colleague, ClientID: client,
		Scopes: []string{mandate.ScopeMailRead}, PurposeCategory: mandate.PurposeAbsence,
		Presence: mandate.PresenceRelaxed, NotBefore: w.clock.Now(), NotAfter: w.clock.Now().Add(24 * time.Hour),
	})
	r, err = w.svc.Approve(ctx, holder2, r.ID, mandate.Approval{})
	must(t, err)
	_, err = w.svc.StartPresence(ctx, holder2, r.ID, "")
	wantErr(t, err, mandate.ErrConflict)
	_, err = w.svc.Leave(ctx, holder2, r.ID, "")
	wantErr(t, err, mandate.ErrConflict)
	if got := w.get(t, r.ID); got.Version != r.Version || !got.LeaseUntil.IsZero() || !got.Live(w.clock.Now()) {
		t.Fatalf("a relaxed delegation changed: %+v", got)
	}
	wantEvents(t, w.mandateEvents(t, r.ID)[2:], []ev{
		denied("holder:"+holder2, "start presence refused: the mandate needs no presence"),
		denied("holder:"+holder2, "end presence refused: the mandate needs no presence"),
	})
}
