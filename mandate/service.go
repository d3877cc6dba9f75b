package mandate

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Request is what a delegate asks (before the holder answers).
type Request struct {
	Kind        Kind
	StructureID string // the delegate's structure
	HolderID    string
	// HolderMailbox finds the holder by mailbox address when HolderID is
	// empty (the device flow's holder_hint).
	HolderMailbox string
	DelegateID    string
	ClientID      string
	Scopes        []string
	// IncludePersonal asks to reach messages marked personal too; the holder
	// sees it on the card. Off by default (Exclusions = [personal]).
	IncludePersonal bool
	Purpose         string
	PurposeCategory PurposeCategory
	Presence        Presence      // PresenceRequired for sessions
	Duration        time.Duration // sessions: length once approved
	// NotBefore and NotAfter: the delegation's absence window.
	NotBefore, NotAfter time.Time
	// AnswerWithin is how long the holder has to answer (device code
	// lifetime); ServiceConfig.AnswerWithin when zero.
	AnswerWithin time.Duration
	RequestID    string // the HTTP request id, for the audit event
}

// Person is a holder or a staff member as the mandate service needs them.
type Person struct {
	ID          string
	DisplayName string
	StructureID string // staff: their structure ("" for platform staff)
	Mailbox     string // holders: their mailbox
	Active      bool   // staff: not deactivated; holders: always true
}

// Directory answers who people are. cmd/mandated adapts people.Service to it.
type Directory interface {
	// Delegate returns a staff member; ErrNotFound when unknown.
	Delegate(ctx context.Context, staffID string) (Person, error)
	// Holder returns a holder served by structureID; ErrNotFound when
	// unknown or not served by that structure.
	Holder(ctx context.Context, structureID, holderID string) (Person, error)
	// HolderByMailbox is Holder by mailbox address (case-insensitive).
	HolderByMailbox(ctx context.Context, structureID, mailbox string) (Person, error)
	// StructureName returns a structure's name (for consent receipts);
	// ErrNotFound when unknown.
	StructureName(ctx context.Context, structureID string) (string, error)
}

// Revoker ends the tokens of a grant at once, on every replica (authz.Server).
type Revoker interface {
	RevokeGrant(ctx context.Context, grantID string) error
}

// Watchers are told, after commit, that a mandate changed (state or lease).
// Across replicas it travels on the same bus as token revocations.
type Watchers interface {
	MandateChanged(ctx context.Context, mandateID string)
}

// Step names an audit event of the mandate service.
type Step string

// Steps; each is one audit action (package audit maps them).
const (
	StepRequested Step = "mandate.requested"
	StepApproved  Step = "mandate.approved"
	StepRefused   Step = "mandate.refused"
	StepLapsed    Step = "mandate.unanswered"
	StepActivated Step = "mandate.activated"
	StepEnded     Step = "mandate.ended"
	StepRefusedBy Step = "mandate.request_refused" // a request or answer refused (policy, not the holder…)
	StepPolicy    Step = "mandate.policy_changed"
	// StepPresenceStarted: the holder (re)opened a delegation's presence
	// lease ("Je suis disponible").
	StepPresenceStarted Step = "mandate.presence_started"
	// StepPresenceEnded: the holder's page left a delegation; its lease
	// ended, the delegation goes on.
	StepPresenceEnded Step = "mandate.presence_ended"
)

// Actor is who took a step.
type Actor struct {
	Kind string // "staff", "holder" or "system"
	ID   string
	Name string
}

// Record is one step to record.
type Record struct {
	Step      Step
	Actor     Actor
	Mandate   Mandate // the mandate after the step (zero for a refused request)
	Denied    bool    // the step was refused; Reason says why
	Reason    string  // no personal data
	RequestID string
}

// Recorder records steps durably; a step whose record fails does not happen.
// audit.MandateRecorder adapts *audit.Log.
type Recorder interface {
	RecordMandate(ctx context.Context, r Record) error
}

// ServiceConfig tunes the service; zero fields take the defaults.
type ServiceConfig struct {
	// AnswerWithin is how long a holder has to answer a request; 10m.
	AnswerWithin time.Duration
	// LeaseLapse is how long a presence lease lives without a heartbeat; 15s.
	LeaseLapse time.Duration
	// ConsentVersion names the consent text shown on approval cards; "2026-11".
	ConsentVersion string
}

// Service runs the mandate use cases.
type Service struct {
	store    Store
	dir      Directory
	revoker  Revoker
	watchers Watchers
	rec      Recorder
	clock    Clock
	log      *slog.Logger
	cfg      ServiceConfig
	locks    *stripes
}

// Deps are the service's collaborators; all but Watchers and Log are required.
type Deps struct {
	Store    Store
	Dir      Directory
	Revoker  Revoker
	Watchers Watchers
	Recorder Recorder
	Clock    Clock
	Log      *slog.Logger
}

// Approval is the holder's answer options.
type Approval struct {
	// IncludePersonal: the holder opts in to messages marked personal.
	IncludePersonal bool
	RequestID       string
}

// Actor kinds.
const (
	ActorStaff  = "staff"
	ActorHolder = "holder"
	ActorSystem = "system"
)

// Service bounds.
const (
	// MaxAnswerWithin bounds Request.AnswerWithin.
	MaxAnswerWithin = 24 * time.Hour
	// sweepBatch is how many due mandates Sweep reads at once.
	sweepBatch = 100
	// maxListLimit bounds Query.Limit.
	maxListLimit = 500
	// defaultListLimit applies when Query.Limit is zero.
	defaultListLimit = 50
)

// NewService returns a Service. Store, Dir, Revoker, Recorder and Clock are
// required; the configuration's ConsentVersion must name a known consent
// text (ConsentText).
func NewService(d Deps, cfg ServiceConfig) (*Service, error) {
	if d.Store == nil || d.Dir == nil || d.Revoker == nil || d.Recorder == nil || d.Clock == nil {
		return nil, errors.New("mandate: Store, Dir, Revoker, Recorder and Clock are required")
	}
	if cfg.AnswerWithin == 0 {
		cfg.AnswerWithin = 10 * time.Minute
	}
	if cfg.LeaseLapse == 0 {
		cfg.LeaseLapse = 15 * time.Second
	}
	if cfg.ConsentVersion == "" {
		cfg.ConsentVersion = DefaultConsentVersion
	}
	if cfg.AnswerWithin < 0 || cfg.AnswerWithin > MaxAnswerWithin {
		return nil, fmt.Errorf("mandate: AnswerWithin %s is outside (0, %s]", cfg.AnswerWithin, MaxAnswerWithin)
	}
	if cfg.LeaseLapse < 0 {
		return nil, fmt.Errorf("mandate: LeaseLapse %s is negative", cfg.LeaseLapse)
	}
	if _, ok := ConsentText(cfg.ConsentVersion, "fr"); !ok {
		return nil, fmt.Errorf("mandate: unknown consent text version %q", cfg.ConsentVersion)
	}
	s := &Service{
		store: d.Store, dir: d.Dir, revoker: d.Revoker, watchers: d.Watchers, rec: d.Recorder,
		clock: d.Clock, log: d.Log, cfg: cfg, locks: new(stripes),
	}
	if s.watchers == nil {
		s.watchers = noWatchers{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

type noWatchers struct{}

func (noWatchers) MandateChanged(context.Context, string) {}

// Config returns the effective configuration.
func (s *Service) Config() ServiceConfig { return s.cfg }

// now is the clock's time at the store's precision, so what is recorded and
// compared is what is stored.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// Policy returns a structure's policy (DefaultPolicy when it has none).
func (s *Service) Policy(ctx context.Context, structureID string) (Policy, error) {
	p, err := s.store.GetPolicy(ctx, structureID)
	if errors.Is(err, ErrNotFound) {
		return DefaultPolicy(structureID), nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("policy of structure %s: %w", structureID, err)
	}
	return p, nil
}

// SetPolicy validates and stores a structure's policy, recorded as StepPolicy.
// by is the admin (the caller checked their permission); an invalid policy
// is recorded as refused and returns an error wrapping ErrInvalidRequest.
// The record's Mandate carries only the structure and the allowed scopes.
func (s *Service) SetPolicy(ctx context.Context, by Actor, p Policy) (Policy, error) {
	if p.StructureID == "" {
		return Policy{}, fmt.Errorf("%w: a policy belongs to a structure", ErrInvalidRequest)
	}
	by = s.named(ctx, by, p.StructureID)
	p.AllowedScopes = normalScopes(p.AllowedScopes)
	p.UpdatedAt = s.now()
	p.UpdatedBy = by.ID
	about := Mandate{StructureID: p.StructureID}
	if err := p.Validate(); err != nil {
		if ValidateScopes(p.AllowedScopes) == nil {
			about.Scopes = p.AllowedScopes
		}
		s.recordDenied(ctx, by, about, "", "policy change refused: "+plain(err))
		return Policy{}, fmt.Errorf("set policy of structure %s: %w", p.StructureID, err)
	}
	about.Scopes = p.AllowedScopes
	rec := Record{Step: StepPolicy, Actor: by, Mandate: about, Reason: policySummary(p)}
	if err := s.rec.RecordMandate(ctx, rec); err != nil {
		return Policy{}, fmt.Errorf("set policy of structure %s: not recorded, nothing changed: %w", p.StructureID, err)
	}
	if err := s.store.PutPolicy(ctx, p); err != nil {
		s.recordDenied(ctx, by, about, "", "policy change not applied: not stored")
		return Policy{}, fmt.Errorf("set policy of structure %s: %w", p.StructureID, err)
	}
	return p, nil
}

func policySummary(p Policy) string {
	presence := "presence always required"
	if p.AllowRelaxedPresence {
		presence = "presence may be relaxed for delegations"
	}
	return fmt.Sprintf("sessions up to %s, delegations up to %s, %s", p.MaxSessionDuration, p.MaxDelegationDuration, presence)
}

// Request creates a mandate in StateRequested after checking the delegate
// (active, of req.StructureID), the holder (served by that structure) and
// the structure's policy. A refused request is recorded (StepRefusedBy,
// denied) and returns an error wrapping ErrPolicy (and ErrPolicyScope for
// a scope the policy does not allow), ErrInvalidRequest or ErrNotFound;
// nothing is stored.
//
// The purpose is trimmed and bounded (MaxPurposeLen); the presence policy
// defaults to PresenceRequired; a session without a duration lasts
// DefaultSessionDuration (or the structure's maximum when shorter); a
// delegation's window starts now when it starts earlier. The record of a
// refused request carries what was established of the mandate (structure,
// holder, delegate, client, kind, catalogued scopes), never the free text.
func (s *Service) Request(ctx context.Context, req Request) (Mandate, error) {
	if req.DelegateID == "" {
		return Mandate{}, fmt.Errorf("request mandate: %w: no delegate", ErrInvalidRequest)
	}
	now := s.now()
	actor := Actor{Kind: ActorStaff, ID: req.DelegateID}
	about := Mandate{Kind: req.Kind, DelegateID: req.DelegateID, ClientID: req.ClientID}
	if ValidateScopes(req.Scopes) == nil {
		about.Scopes = normalScopes(req.Scopes)
	}
	refuse := func(kind error, reason string) (Mandate, error) {
		d := &denial{kind: kind, reason: reason}
		s.recordDenied(ctx, actor, about, req.RequestID, "request refused: "+reason)
		return Mandate{}, fmt.Errorf("request mandate: %w", d)
	}

	delegate, err := s.dir.Delegate(ctx, req.DelegateID)
	if errors.Is(err, ErrNotFound) {
		return refuse(ErrNotFound, "unknown delegate")
	}
	if err != nil {
		return Mandate{}, fmt.Errorf("request mandate: %w", err)
	}
	actor.Name = delegate.DisplayName
	if req.StructureID == "" || delegate.StructureID != req.StructureID {
		return refuse(ErrPolicy, "the delegate does not belong to this structure")
	}
	about.StructureID = req.StructureID
	if !delegate.Active {
		return refuse(ErrPolicy, "the delegate's account is not active")
	}

	purpose, err := cleanPurpose(req.Purpose)
	if err != nil {
		return refuse(ErrInvalidRequest, err.Error())
	}
	if !req.PurposeCategory.Valid() {
		return refuse(ErrInvalidRequest, "unknown purpose category")
	}

	var holder Person
	switch {
	case req.HolderID != "":
		holder, err = s.dir.Holder(ctx, req.StructureID, req.HolderID)
	case req.HolderMailbox != "":
		holder, err = s.dir.HolderByMailbox(ctx, req.StructureID, req.HolderMailbox)
	default:
		return refuse(ErrInvalidRequest, "no holder named")
	}
	if errors.Is(err, ErrNotFound) {
		return refuse(ErrNotFound, "unknown holder, or not served by this structure")
	}
	if err != nil {
		return Mandate{}, fmt.Errorf("request mandate: %w", err)
	}
	about.HolderID = holder.ID

	policy, err := s.Policy(ctx, req.StructureID)
	if err != nil {
		return Mandate{}, fmt.Errorf("request mandate: %w", err)
	}
	if req.Presence == "" {
		req.Presence = PresenceRequired
	}
	switch req.Kind {
	case KindSession:
		if req.Duration == 0 {
			req.Duration = min(DefaultSessionDuration, policy.MaxSessionDuration)
		}
		req.NotBefore, req.NotAfter = time.Time{}, time.Time{}
	case KindDelegation:
		req.NotBefore, req.NotAfter = req.NotBefore.UTC().Truncate(time.Microsecond), req.NotAfter.UTC().Truncate(time.Microsecond)
		if req.NotBefore.Before(now) {
			req.NotBefore = now
		}
		if !req.NotAfter.After(now) {
			return refuse(ErrInvalidRequest, "the absence window is over")
		}
		req.Duration = req.NotAfter.Sub(req.NotBefore)
	}
	within := req.AnswerWithin
	if within == 0 {
		within = s.cfg.AnswerWithin
	}
	if within < 0 || within > MaxAnswerWithin {
		return refuse(ErrInvalidRequest, fmt.Sprintf("the time to answer is outside (0, %s]", MaxAnswerWithin))
	}
	if err := policy.Check(req); err != nil {
		kind := ErrInvalidRequest
		switch {
		case errors.Is(err, ErrPolicyScope):
			kind = ErrPolicyScope
		case errors.Is(err, ErrPolicy):
			kind = ErrPolicy
		}
		return refuse(kind, plain(err))
	}

	id, err := newID()
	if err != nil {
		return Mandate{}, fmt.Errorf("request mandate: %w", err)
	}
	m := Mandate{
		ID: id, Kind: req.Kind, StructureID: req.StructureID,
		HolderID: holder.ID, Mailbox: holder.Mailbox, DelegateID: delegate.ID, ClientID: req.ClientID,
		Scopes: normalScopes(req.Scopes), Exclusions: []string{ExcludePersonal},
		Purpose: purpose, PurposeCategory: req.PurposeCategory, Presence: req.Presence,
		Duration: req.Duration, NotBefore: req.NotBefore, NotAfter: req.NotAfter,
		AnswerBy: now.Add(within), State: StateRequested, CreatedAt: now, Version: 1,
	}
	if req.IncludePersonal {
		m.Exclusions = nil
	}
	if err := s.rec.RecordMandate(ctx, Record{Step: StepRequested, Actor: actor, Mandate: m, RequestID: req.RequestID}); err != nil {
		return Mandate{}, fmt.Errorf("request mandate: not recorded, nothing stored: %w", err)
	}
	if err := s.store.CreateMandate(ctx, m); err != nil {
		s.recordDenied(ctx, actor, m, req.RequestID, "request not applied: not stored")
		return Mandate{}, fmt.Errorf("request mandate: %w", err)
	}
	s.changed(ctx, m)
	return m, nil
}

// cleanPurpose trims the free-text purpose, turns CRLF into LF and refuses
// what is too long, not UTF-8 or holds control characters other than line
// feeds and tabs.
func cleanPurpose(p string) (string, error) {
	p = strings.TrimSpace(strings.ReplaceAll(p, "\r\n", "\n"))
	if len(p) > MaxPurposeLen {
		return "", fmt.Errorf("the purpose is longer than %d bytes", MaxPurposeLen)
	}
	if !utf8.ValidString(p) {
		return "", errors.New("the purpose is not UTF-8 text")
	}
	if strings.ContainsFunc(p, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return "", errors.New("the purpose holds control characters")
	}
	return p, nil
}

// normalScopes drops duplicates and puts catalogued scopes in catalogue
// order (unknown ones after, in the order given).
func normalScopes(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	var out []string
	for _, c := range catalogue {
		if slices.Contains(in, c.Name) {
			out = append(out, c.Name)
		}
	}
	for _, n := range in {
		if _, ok := LookupScope(n); !ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// newID returns 128 random bits in lower-case base32 (26 characters).
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random mandate id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// Get returns a mandate.
func (s *Service) Get(ctx context.Context, id string) (Mandate, error) {
	m, err := s.store.GetMandate(ctx, id)
	if err != nil {
		return Mandate{}, fmt.Errorf("get mandate: %w", err)
	}
	return m, nil
}

// List pages through mandates. A zero Limit means 50; it may not exceed 500.
func (s *Service) List(ctx context.Context, q Query) ([]Mandate, error) {
	if q.Limit == 0 {
		q.Limit = defaultListLimit
	}
	if q.Limit < 0 || q.Limit > maxListLimit {
		return nil, fmt.Errorf("list mandates: %w: limit %d outside 1..%d", ErrInvalidRequest, q.Limit, maxListLimit)
	}
	ms, err := s.store.ListMandates(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", err)
	}
	return ms, nil
}

// Approve is the holder's yes: only the mandate's holder may (ErrNotFound
// for anyone else, recorded as denied), only while requested and before
// AnswerBy. A session's window starts now (NotBefore = now, NotAfter =
// now + Duration). When presence is required a lease starts (LeaseUntil =
// now + LeaseLapse) for a session, and for a delegation whose window is
// open (a delegation approved ahead of its window starts its lease later,
// with StartPresence). The consent receipt is built (Receipt) and kept:
// its canonical bytes in ConsentReceipt, their SHA-256 in ConsentHash.
// Exclusions drop "personal" when the holder opted in.
func (s *Service) Approve(ctx context.Context, holderID, mandateID string, a Approval) (Mandate, error) {
	return s.step(ctx, "approve", mandateID, a.RequestID, holderActor(holderID),
		func(ctx context.Context, cur Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			if cur.HolderID != holderID {
				return "", nil, notTheHolder
			}
			holder, err := s.dir.Holder(ctx, cur.StructureID, cur.HolderID)
			if errors.Is(err, ErrNotFound) {
				return "", nil, &denial{ErrNotFound, "the holder is no longer served by this structure"}
			}
			if err != nil {
				return "", nil, err
			}
			delegate, err := s.dir.Delegate(ctx, cur.DelegateID)
			if errors.Is(err, ErrNotFound) || err == nil && !delegate.Active {
				return "", nil, &denial{ErrConflict, "the delegate's account is not active"}
			}
			if err != nil {
				return "", nil, err
			}
			structure, err := s.dir.StructureName(ctx, cur.StructureID)
			if err != nil {
				return "", nil, err
			}
			return StepApproved, func(m *Mandate) error {
				next, err := Next(m.State, TransitionApprove, "")
				if err != nil {
					return &denial{err, "the mandate is " + string(m.State)}
				}
				if !now.Before(m.AnswerBy) {
					return &denial{ErrConflict, "the time to answer is over"}
				}
				switch m.Kind {
				case KindSession:
					m.NotBefore, m.NotAfter = now, now.Add(m.Duration)
				case KindDelegation:
					if !now.Before(m.NotAfter) {
						return &denial{ErrConflict, "the absence window is over"}
					}
				}
				if a.IncludePersonal {
					m.Exclusions = slices.DeleteFunc(slices.Clone(m.Exclusions), func(e string) bool { return e == ExcludePersonal })
				}
				if m.Presence == PresenceRequired && (m.Kind == KindSession || !now.Before(m.NotBefore)) {
					m.LeaseUntil = now.Add(s.cfg.LeaseLapse)
				}
				m.State, m.DecidedAt = next, now
				m.ConsentVersion = s.cfg.ConsentVersion
				receipt := NewReceipt(*m, holder, delegate, structure, s.cfg.ConsentVersion, now)
				m.ConsentReceipt = receipt.Canonical()
				m.ConsentHash = receiptHash(m.ConsentReceipt)
				return nil
			}, nil
		})
}

// Refuse is the holder's no: only the mandate's holder may (ErrNotFound
// for anyone else, recorded as denied), only while requested.
func (s *Service) Refuse(ctx context.Context, holderID, mandateID, requestID string) (Mandate, error) {
	return s.step(ctx, "refuse", mandateID, requestID, holderActor(holderID),
		func(_ context.Context, cur Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			if cur.HolderID != holderID {
				return "", nil, notTheHolder
			}
			return StepRefused, func(m *Mandate) error {
				next, err := Next(m.State, TransitionRefuse, "")
				if err != nil {
					return &denial{err, "the mandate is " + string(m.State)}
				}
				m.State, m.DecidedAt = next, now
				return nil
			}, nil
		})
}

// Activate marks the first token issued under an approved mandate (the
// device code exchange): approved → active, GrantID = grantID. It refuses
// (ErrConflict) unless the mandate is Live at now: that makes a device code
// single-use. The step is recorded with the delegate as actor.
func (s *Service) Activate(ctx context.Context, mandateID, grantID, requestID string) (Mandate, error) {
	actor := func(cur Mandate) Actor {
		if cur.DelegateID == "" {
			return Actor{Kind: ActorSystem}
		}
		return Actor{Kind: ActorStaff, ID: cur.DelegateID}
	}
	return s.step(ctx, "activate", mandateID, requestID, actor,
		func(_ context.Context, _ Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			if grantID == "" {
				return "", nil, &denial{ErrInvalidRequest, "no grant"}
			}
			return StepActivated, func(m *Mandate) error {
				next, err := Next(m.State, TransitionActivate, "")
				if err != nil {
					return &denial{err, "the mandate is " + string(m.State)}
				}
				if !m.Exchangeable(now) {
					return &denial{ErrConflict, "the mandate is outside its window or the holder is not present"}
				}
				m.State, m.GrantID, m.ActivatedAt = next, grantID, now
				return nil
			}, nil
		})
}

// End ends a mandate for reason; by is who ended it (checked: the holder
// for EndedByHolder, the delegate for EndedByDelegate, an admin of the
// structure for EndedByAdmin — the caller checked the admin's
// permission). Its grant is revoked through the Revoker after the state
// is written, and watchers are told. Ending an ended mandate is
// ErrConflict.
//
// Who may give which reason: EndedByHolder the holder; EndedByDelegate the
// delegate (ErrNotFound for anyone else, recorded as denied); EndedByAdmin
// any staff member (ErrNotFound for others); EndedByOffboarding staff or
// the system; EndedByExpiry the system, once NotAfter is past;
// EndedByPresence the holder (Leave) or the system once the lease lapsed,
// and only for sessions that need presence (a delegation outlives its
// lease). Ending clears the lease.
func (s *Service) End(ctx context.Context, mandateID string, reason EndReason, by Actor, requestID string) (Mandate, error) {
	if by.Kind == ActorSystem {
		by.ID, by.Name = "", ""
	}
	return s.step(ctx, "end", mandateID, requestID, func(Mandate) Actor { return by },
		func(_ context.Context, cur Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			if err := mayEnd(cur, reason, by); err != nil {
				return "", nil, err
			}
			return StepEnded, ending(reason, by, now), nil
		})
}

// ending is the change that ends a mandate for reason at now.
func ending(reason EndReason, by Actor, now time.Time) func(*Mandate) error {
	return func(m *Mandate) error {
		next, err := Next(m.State, TransitionEnd, reason)
		if err != nil {
			return &denial{err, "cannot end a mandate that is " + string(m.State) + " for " + string(reason)}
		}
		switch {
		case reason == EndedByExpiry && now.Before(m.NotAfter):
			return &denial{ErrConflict, "the mandate has not expired"}
		case reason == EndedByPresence && m.Presence != PresenceRequired:
			return &denial{ErrConflict, "the mandate needs no presence"}
		case reason == EndedByPresence && m.Kind != KindSession:
			return &denial{ErrConflict, "a delegation does not end when the holder leaves"}
		case reason == EndedByPresence && by.Kind == ActorSystem && m.Present(now):
			return &denial{ErrConflict, "the holder is still present"}
		}
		m.State, m.EndReason, m.EndedBy, m.EndedAt = next, reason, by.ID, now
		m.LeaseUntil = time.Time{}
		return nil
	}
}

// lapsing is the change that lapses an unanswered request at now.
func lapsing(now time.Time) func(*Mandate) error {
	return func(m *Mandate) error {
		next, err := Next(m.State, TransitionLapse, "")
		if err != nil {
			return &denial{err, "the mandate is " + string(m.State)}
		}
		if now.Before(m.AnswerBy) {
			return &denial{ErrConflict, "the time to answer is not over"}
		}
		m.State, m.DecidedAt = next, now
		return nil
	}
}

// mayEnd tells whether by may end cur for reason.
func mayEnd(cur Mandate, reason EndReason, by Actor) error {
	staff := by.Kind == ActorStaff && by.ID != ""
	ok := false
	switch reason {
	case EndedByHolder:
		if by.Kind != ActorHolder || by.ID != cur.HolderID {
			return notTheHolder
		}
		ok = true
	case EndedByDelegate:
		if by.Kind != ActorStaff || by.ID != cur.DelegateID {
			return &denial{ErrNotFound, "not the delegate of this mandate"}
		}
		ok = true
	case EndedByAdmin:
		if !staff {
			return &denial{ErrNotFound, "only staff end a mandate as admin"}
		}
		ok = true
	case EndedByOffboarding:
		ok = staff || by.Kind == ActorSystem
	case EndedByExpiry:
		ok = by.Kind == ActorSystem
	case EndedByPresence:
		if by.Kind == ActorHolder && by.ID != cur.HolderID {
			return notTheHolder
		}
		ok = by.Kind == ActorHolder || by.Kind == ActorSystem
	default:
		return &denial{ErrInvalidRequest, "unknown end reason"}
	}
	if !ok {
		return &denial{ErrInvalidRequest, "a " + by.Kind + " actor cannot end a mandate for " + string(reason)}
	}
	return nil
}

// EndAllOfDelegate ends every requested, approved or active mandate of a
// delegate (offboarding); returns how many. Mandates another process ended
// meanwhile are skipped; other failures are returned together after trying
// every mandate.
func (s *Service) EndAllOfDelegate(ctx context.Context, staffID string, reason EndReason, by Actor) (int, error) {
	if staffID == "" {
		return 0, fmt.Errorf("end mandates of delegate: %w: no delegate", ErrInvalidRequest)
	}
	q := Query{DelegateID: staffID, States: []State{StateRequested, StateApproved, StateActive}, Limit: sweepBatch}
	ended := 0
	var errs []error
	for {
		page, err := s.store.ListMandates(ctx, q)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, m := range page {
			_, err := s.End(ctx, m.ID, reason, by, "")
			switch {
			case err == nil:
				ended++
			case !errors.Is(err, ErrConflict):
				errs = append(errs, err)
			}
		}
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.BeforeCreated, q.BeforeID = last.CreatedAt, last.ID
	}
	if err := errors.Join(errs...); err != nil {
		return ended, fmt.Errorf("end mandates of delegate %s: %w", staffID, err)
	}
	return ended, nil
}

// Heartbeat keeps the holder's presence lease alive: LeaseUntil = now +
// LeaseLapse. ErrNotFound when the mandate is not the holder's (recorded as
// denied); ErrConflict when the lease already lapsed or the mandate ended.
// Heartbeats are not audited (the lease's start and end are), nor are
// watchers told of them.
func (s *Service) Heartbeat(ctx context.Context, holderID, mandateID string) (time.Time, error) {
	now := s.now()
	until := now.Add(s.cfg.LeaseLapse)
	err := s.store.ExtendLease(ctx, mandateID, holderID, now, until)
	if errors.Is(err, ErrNotFound) {
		actor := Actor{Kind: ActorHolder, ID: holderID}
		var about Mandate
		if m, gerr := s.store.GetMandate(ctx, mandateID); gerr == nil {
			about = m
			actor = s.named(ctx, actor, m.StructureID)
		}
		s.recordDenied(ctx, actor, about, "", "heartbeat refused: "+notTheHolder.reason)
		return time.Time{}, fmt.Errorf("heartbeat for mandate %s: %w", mandateID, notTheHolder)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("heartbeat: %w", err)
	}
	return until, nil
}

// Leave ends the holder's presence at once (the page was closed). A
// session ends with EndedByPresence. A delegation goes on: only its lease
// ends (LeaseUntil = now), recorded as StepPresenceEnded, so its tokens
// stop working until the holder starts their presence again
// (StartPresence); leaving a delegation whose lease is not alive changes
// and records nothing. ErrNotFound for anyone but the holder (recorded as
// denied); ErrConflict when the mandate is over.
func (s *Service) Leave(ctx context.Context, holderID, mandateID, requestID string) (Mandate, error) {
	// The kind never changes: reading it outside the step is safe.
	if cur, err := s.store.GetMandate(ctx, mandateID); err == nil && cur.Kind == KindDelegation {
		if cur.HolderID == holderID && cur.Presence == PresenceRequired &&
			(cur.State == StateApproved || cur.State == StateActive) && !cur.Present(s.now()) {
			return cur, nil
		}
		return s.endPresence(ctx, holderID, mandateID, requestID)
	}
	return s.End(ctx, mandateID, EndedByPresence, Actor{Kind: ActorHolder, ID: holderID}, requestID)
}

// endPresence ends a delegation's live lease, not the delegation.
func (s *Service) endPresence(ctx context.Context, holderID, mandateID, requestID string) (Mandate, error) {
	return s.step(ctx, "end presence", mandateID, requestID, holderActor(holderID),
		func(_ context.Context, cur Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			if cur.HolderID != holderID {
				return "", nil, notTheHolder
			}
			if cur.Presence != PresenceRequired {
				return "", nil, &denial{ErrConflict, "the mandate needs no presence"}
			}
			return StepPresenceEnded, func(m *Mandate) error {
				if m.State != StateApproved && m.State != StateActive {
					return &denial{ErrConflict, "the mandate is " + string(m.State)}
				}
				if !m.Present(now) {
					return &denial{ErrConflict, "the holder is not present"}
				}
				m.LeaseUntil = now
				return nil
			}, nil
		})
}

// StartPresence (re)opens the presence lease of a delegation that needs
// the holder's presence ("Je suis disponible"): LeaseUntil = now +
// LeaseLapse, recorded as StepPresenceStarted; heartbeats then keep it
// alive. Only the holder may (ErrNotFound for anyone else, recorded as
// denied), only while the delegation is approved or active and inside its
// window (ErrConflict otherwise, recorded as denied). Sessions never
// restart a lease: theirs starts at approval and its lapse ends them
// (ErrConflict). It returns the lease's new end.
func (s *Service) StartPresence(ctx context.Context, holderID, mandateID, requestID string) (time.Time, error) {
	m, err := s.step(ctx, "start presence", mandateID, requestID, holderActor(holderID),
		func(_ context.Context, cur Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			if cur.HolderID != holderID {
				return "", nil, notTheHolder
			}
			if cur.Kind != KindDelegation {
				return "", nil, &denial{ErrConflict, "only a delegation's presence starts again"}
			}
			if cur.Presence != PresenceRequired {
				return "", nil, &denial{ErrConflict, "the mandate needs no presence"}
			}
			return StepPresenceStarted, func(m *Mandate) error {
				if m.State != StateApproved && m.State != StateActive {
					return &denial{ErrConflict, "the mandate is " + string(m.State)}
				}
				if now.Before(m.NotBefore) || !now.Before(m.NotAfter) {
					return &denial{ErrConflict, "outside the delegation's window"}
				}
				m.LeaseUntil = now.Add(s.cfg.LeaseLapse)
				return nil
			}, nil
		})
	if err != nil {
		return time.Time{}, err
	}
	return m.LeaseUntil, nil
}

// Sweep moves every due mandate (DueMandates): unanswered requests lapse,
// mandates past NotAfter end by expiry, sessions whose lease lapsed end by
// presence loss (a delegation outlives its lease).
// It returns how many moved. Safe to run on several replicas at once: a
// mandate another replica moved first is skipped. Each mandate is tried at
// most once per sweep; failures are returned together.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	moved := 0
	tried := map[string]bool{}
	var errs []error
	for {
		due, err := s.store.DueMandates(ctx, s.now(), sweepBatch)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep: %w", err))
			break
		}
		// Replicas sweeping at once meet less often in different orders.
		mrand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
		fresh := 0
		for _, m := range due {
			if tried[m.ID] {
				continue
			}
			tried[m.ID] = true
			fresh++
			ok, err := s.sweepOne(ctx, m.ID)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				moved++
			}
		}
		if fresh == 0 || len(due) < sweepBatch {
			break
		}
	}
	return moved, errors.Join(errs...)
}

// errNotDue: the mandate Sweep listed needs no move any more.
var errNotDue = errors.New("not due")

// sweepOne moves one mandate DueMandates listed, as it is now; false, nil
// when it is not due any more or another replica moved it first.
func (s *Service) sweepOne(ctx context.Context, id string) (bool, error) {
	system := Actor{Kind: ActorSystem}
	_, err := s.step(ctx, "sweep", id, "", func(Mandate) Actor { return system },
		func(_ context.Context, cur Mandate, now time.Time) (Step, func(*Mandate) error, error) {
			live := cur.State == StateApproved || cur.State == StateActive
			switch {
			case cur.State == StateRequested && !now.Before(cur.AnswerBy):
				return StepLapsed, lapsing(now), nil
			case live && !now.Before(cur.NotAfter):
				return StepEnded, ending(EndedByExpiry, system, now), nil
			case live && cur.Kind == KindSession && cur.Presence == PresenceRequired && !cur.Present(now):
				return StepEnded, ending(EndedByPresence, system, now), nil
			}
			return "", nil, errNotDue
		})
	if errors.Is(err, errNotDue) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Run sweeps at once, then every interval until ctx ends; it logs the
// sweeps' errors and returns nil when ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("mandate sweep: interval %s is not positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "mandate sweep", "moved", n, "err", err)
		} else if n > 0 {
			s.log.DebugContext(ctx, "mandate sweep", "moved", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// denial is a refused step: recorded as denied with its reason (plain
// words, no personal data) and returned wrapping kind (ErrNotFound,
// ErrConflict, ErrPolicy, ErrInvalidRequest or an error wrapping one).
type denial struct {
	kind   error
	reason string
}

func (d *denial) Error() string { return d.reason + ": " + d.kind.Error() }
func (d *denial) Unwrap() error { return d.kind }

// notTheHolder answers anyone but the holder as if the mandate did not exist.
var notTheHolder = &denial{ErrNotFound, "not the holder of this mandate"}

func holderActor(id string) func(Mandate) Actor {
	return func(Mandate) Actor { return Actor{Kind: ActorHolder, ID: id} }
}

// errStale aborts a write when the mandate changed after its step was
// recorded.
var errStale = fmt.Errorf("the mandate changed meanwhile: %w", ErrConflict)

// prepareFunc checks a step against the mandate as read (cur) and returns
// it with the change it makes; it may read the Directory. A *denial refuses
// the step. The change runs twice on the same instant now: on a copy of cur
// (what is recorded) and on the row under the store's lock (what is
// written); it must change m the same way both times, or refuse with a
// *denial.
type prepareFunc func(ctx context.Context, cur Mandate, now time.Time) (Step, func(m *Mandate) error, error)

// step takes one step on one mandate: read it, prepare, record, then write. A step whose record fails does not happen.
//
// The record cannot be written inside the store's transaction: on SQLite
// that transaction holds the only writer connection, which the audit log
// needs (audit.Log.Record's contract). So the step is recorded first and
// written after, on the condition that the mandate's Version did not move
// since it was read; steps on one mandate are serialized in this process,
// so only another replica can move it. When the write then fails (that
// replica won, or the database failed), a denied record says the step was
// not applied, and the caller gets an error wrapping ErrConflict (or the
// database's error).
func (s *Service) step(ctx context.Context, verb, id, requestID string, actorOf func(Mandate) Actor, prepare prepareFunc) (Mandate, error) {
	m, err := s.stepLocked(ctx, verb, id, requestID, actorOf, prepare)
	if err != nil {
		return Mandate{}, err
	}
	s.changed(ctx, m)
	return m, nil
}

func (s *Service) stepLocked(ctx context.Context, verb, id, requestID string, actorOf func(Mandate) Actor, prepare prepareFunc) (Mandate, error) {
	unlock := s.locks.lock(id)
	defer unlock()
	now := s.now()
	cur, err := s.store.GetMandate(ctx, id)
	if errors.Is(err, ErrNotFound) {
		s.recordDenied(ctx, actorOf(Mandate{}), Mandate{}, requestID, verb+" refused: unknown mandate")
	}
	if err != nil {
		return Mandate{}, fmt.Errorf("%s mandate %s: %w", verb, id, err)
	}
	actor := s.named(ctx, actorOf(cur), cur.StructureID)
	refused := func(err error) (Mandate, error) {
		var d *denial
		if errors.As(err, &d) {
			s.recordDenied(ctx, actor, cur, requestID, verb+" refused: "+d.reason)
		}
		return Mandate{}, fmt.Errorf("%s mandate %s: %w", verb, id, err)
	}
	step, change, err := prepare(ctx, cur, now)
	if err != nil {
		return refused(err)
	}
	next := cur
	next.Scopes, next.Exclusions = slices.Clone(cur.Scopes), slices.Clone(cur.Exclusions)
	if err := change(&next); err != nil {
		return refused(err)
	}
	next.Version = cur.Version + 1
	if err := s.rec.RecordMandate(ctx, Record{Step: step, Actor: actor, Mandate: next, RequestID: requestID}); err != nil {
		return Mandate{}, fmt.Errorf("%s mandate %s: not recorded, nothing changed: %w", verb, id, err)
	}
	written, err := s.store.UpdateMandate(ctx, id, func(m *Mandate) error {
		if m.Version != cur.Version {
			return errStale
		}
		if err := change(m); err != nil {
			return fmt.Errorf("%w: %w", errStale, err)
		}
		return nil
	})
	if err != nil {
		reason := verb + " not applied: the mandate changed meanwhile"
		if !errors.Is(err, ErrConflict) {
			reason = verb + " not applied: not stored"
		}
		s.recordDenied(ctx, actor, cur, requestID, reason)
		return Mandate{}, fmt.Errorf("%s mandate %s: %w", verb, id, err)
	}
	return written, nil
}

// changed runs after a committed change: an ended mandate's grant is
// revoked, then watchers are told. Neither may be skipped because the
// caller's context ended.
func (s *Service) changed(ctx context.Context, m Mandate) {
	ctx = context.WithoutCancel(ctx)
	if m.State == StateEnded && m.GrantID != "" {
		if err := s.revoker.RevokeGrant(ctx, m.GrantID); err != nil {
			// The mandate is ended: token checks that consult it refuse
			// already; the grant's tokens also die with their short lifetime.
			s.log.ErrorContext(ctx, "revoke the grant of an ended mandate", "mandate_id", m.ID, "grant_id", m.GrantID, "err", err)
		}
	}
	s.watchers.MandateChanged(ctx, m.ID)
}

// recordDenied records a refused step; its own failure is logged (the
// step is refused anyway).
func (s *Service) recordDenied(ctx context.Context, actor Actor, about Mandate, requestID, reason string) {
	r := Record{Step: StepRefusedBy, Actor: actor, Mandate: about, Denied: true, Reason: reason, RequestID: requestID}
	if err := s.rec.RecordMandate(ctx, r); err != nil {
		s.log.ErrorContext(ctx, "record a refused mandate step", "mandate_id", about.ID, "reason", reason, "err", err)
	}
}

// named fills an actor's name from the Directory (staff, or holders served
// by structureID); the system has neither id nor name.
func (s *Service) named(ctx context.Context, a Actor, structureID string) Actor {
	var p Person
	var err error
	switch a.Kind {
	case ActorSystem:
		return Actor{Kind: ActorSystem}
	case ActorStaff:
		p, err = s.dir.Delegate(ctx, a.ID)
	case ActorHolder:
		p, err = s.dir.Holder(ctx, structureID, a.ID)
	default:
		return a
	}
	if a.ID == "" || err != nil {
		return a
	}
	a.Name = p.DisplayName
	return a
}

// plain turns an error into a recordable reason: no control characters,
// at most 200 bytes, and unknown scope names (free input) left out.
func plain(err error) string {
	var unknown *UnknownScopeError
	if errors.As(err, &unknown) {
		return "unknown scope"
	}
	msg := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(err.Error(), "?"))
	if len(msg) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// stripes serializes the steps on one mandate within this process.
type stripes [64]sync.Mutex

func (l *stripes) lock(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}
