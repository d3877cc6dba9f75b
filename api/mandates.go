package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// Mandates is what the mandates API needs of the mandate service
// (*mandate.Service).
type Mandates interface {
	Get(ctx context.Context, id string) (mandate.Mandate, error)
	List(ctx context.Context, q mandate.Query) ([]mandate.Mandate, error)
	End(ctx context.Context, mandateID string, reason mandate.EndReason, by mandate.Actor, requestID string) (mandate.Mandate, error)
	Policy(ctx context.Context, structureID string) (mandate.Policy, error)
	SetPolicy(ctx context.Context, by mandate.Actor, p mandate.Policy) (mandate.Policy, error)
}

// RegisterMandates adds the mandates REST API: list and read the mandates
// of the caller's structure, end one, and read or replace a structure's
// policy. Callers are signed-in staff (who returns the principal of the UI
// session cookie), as for the holders API; unsafe methods carry the
// session's CSRF token (X-CSRF-Token header, or _csrf).
//
// Who sees what: a structure's admins and auditors see its mandates
// (platform staff: every structure's, naming one with structure_id);
// mediators see those they asked for. A mandate of another structure
// answers 404, as an unknown one. The delegate ends a mandate as delegate,
// a structure admin as admin. Any staff member of a structure reads its
// policy; its admins replace it.
//
// clock tells "present" (the holder's presence lease is alive) in the
// answers; the system clock when nil.
func RegisterMandates(e *echo.Echo, m Mandates, clock mandate.Clock, who func(echo.Context) (people.Principal, bool)) {
	if clock == nil {
		clock = mandate.SystemClock{}
	}
	mh := mandateHandlers{m: m, who: who, clock: clock}
	e.GET("/api/mandates", mh.list)
	e.GET("/api/mandates/:id", mh.get)
	e.POST("/api/mandates/:id/end", mh.end)
	e.GET("/api/structures/:id/policy", mh.getPolicy)
	e.PUT("/api/structures/:id/policy", mh.putPolicy)
}

type mandateHandlers struct {
	m     Mandates
	who   func(echo.Context) (people.Principal, bool)
	clock mandate.Clock
}

// MandateJSON is a mandate as the API shows it. Times are RFC 3339 UTC;
// absent when not (yet) set.
type MandateJSON struct {
	ID              string   `json:"id"`
	Kind            string   `json:"kind"`
	State           string   `json:"state"`
	EndReason       string   `json:"end_reason,omitempty"`
	EndedBy         string   `json:"ended_by,omitempty"`
	StructureID     string   `json:"structure_id"`
	HolderID        string   `json:"holder_id"`
	Mailbox         string   `json:"mailbox"`
	DelegateID      string   `json:"delegate_id"`
	ClientID        string   `json:"client_id"`
	Scopes          []string `json:"scopes"`
	Exclusions      []string `json:"exclusions"`
	Purpose         string   `json:"purpose"`
	PurposeCategory string   `json:"purpose_category"`
	Presence        string   `json:"presence"`
	DurationSeconds int64    `json:"duration_seconds"`
	// Present: the holder's presence lease is alive now.
	Present        bool   `json:"present"`
	NotBefore      string `json:"not_before,omitempty"`
	NotAfter       string `json:"not_after,omitempty"`
	AnswerBy       string `json:"answer_by,omitempty"`
	CreatedAt      string `json:"created_at"`
	DecidedAt      string `json:"decided_at,omitempty"`
	ActivatedAt    string `json:"activated_at,omitempty"`
	EndedAt        string `json:"ended_at,omitempty"`
	ConsentVersion string `json:"consent_version,omitempty"`
	ConsentHash    string `json:"consent_hash,omitempty"`
}

func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toMandateJSON(m mandate.Mandate, now time.Time) MandateJSON {
	return MandateJSON{
		ID: m.ID, Kind: string(m.Kind), State: string(m.State), EndReason: string(m.EndReason), EndedBy: m.EndedBy,
		StructureID: m.StructureID, HolderID: m.HolderID, Mailbox: m.Mailbox, DelegateID: m.DelegateID, ClientID: m.ClientID,
		Scopes: nonNil(m.Scopes), Exclusions: nonNil(m.Exclusions), Purpose: m.Purpose, PurposeCategory: string(m.PurposeCategory),
		Presence: string(m.Presence), DurationSeconds: int64(m.Duration / time.Second), Present: m.Present(now),
		NotBefore: apiTime(m.NotBefore), NotAfter: apiTime(m.NotAfter), AnswerBy: apiTime(m.AnswerBy),
		CreatedAt: apiTime(m.CreatedAt), DecidedAt: apiTime(m.DecidedAt), ActivatedAt: apiTime(m.ActivatedAt),
		EndedAt: apiTime(m.EndedAt), ConsentVersion: m.ConsentVersion, ConsentHash: m.ConsentHash,
	}
}

// staff returns the signed-in staff member, or writes the 401 problem.
func (mh mandateHandlers) staff(c echo.Context) (people.Principal, bool, error) {
	p, ok := mh.who(c)
	if !ok || p.Kind != "staff" {
		return people.Principal{}, false, WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "sign in as staff first: this API uses the session of the pages"})
	}
	return p, true, nil
}

// seesAll: p reads every mandate of structureID (its admins and auditors).
func seesAll(p people.Principal, structureID string) bool {
	return people.Can(p, people.PermManageStaff, structureID) || people.Can(p, people.PermReadAudit, structureID)
}

// mayRead: the delegate, or staff who see all of the mandate's structure.
func mayRead(p people.Principal, m mandate.Mandate) bool {
	return (m.DelegateID == p.ID && p.Kind == "staff") || seesAll(p, m.StructureID)
}

func problemNotFound(c echo.Context, what string) error {
	return WriteProblem(c, Problem{Status: http.StatusNotFound, Detail: "no such " + what})
}

// staffMandate returns the signed-in staff member and the path's mandate
// when they may read it; otherwise it writes the 401 or 404 problem.
func (mh mandateHandlers) staffMandate(c echo.Context) (people.Principal, mandate.Mandate, bool, error) {
	p, ok, err := mh.staff(c)
	if !ok {
		return p, mandate.Mandate{}, false, err
	}
	id := c.Param("id")
	if id == "" || len(id) > 100 {
		return p, mandate.Mandate{}, false, problemNotFound(c, "mandate")
	}
	m, err := mh.m.Get(c.Request().Context(), id)
	if errors.Is(err, mandate.ErrNotFound) || (err == nil && !mayRead(p, m)) {
		return p, mandate.Mandate{}, false, problemNotFound(c, "mandate")
	}
	if err != nil {
		return p, mandate.Mandate{}, false, err
	}
	return p, m, true, nil
}

// noStore answers v as JSON that no cache keeps.
func noStore(c echo.Context, v any) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, v)
}

func (mh mandateHandlers) get(c echo.Context) error {
	_, m, ok, err := mh.staffMandate(c)
	if !ok {
		return err
	}
	return noStore(c, toMandateJSON(m, mh.clock.Now()))
}

type mandateListResponse struct {
	Mandates []MandateJSON `json:"mandates"`
	// Next is the cursor of the next page (the before= parameter); absent
	// on the last page.
	Next string `json:"next,omitempty"`
}

// maxMandatePage bounds limit=.
const maxMandatePage = 200

// mandateCursor is an opaque page cursor: the last mandate of a page.
func mandateCursor(m mandate.Mandate) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(m.CreatedAt.UnixNano(), 10) + "." + m.ID))
}

func parseMandateCursor(s string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 200 {
		return time.Time{}, "", errors.New("bad cursor")
	}
	ns, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || id == "" || err != nil || n <= 0 {
		return time.Time{}, "", errors.New("bad cursor")
	}
	return time.Unix(0, n).UTC(), id, nil
}

func (mh mandateHandlers) list(c echo.Context) error {
	p, ok, err := mh.staff(c)
	if !ok {
		return err
	}
	q := c.QueryParams()
	structure := p.StructureID
	if s := strings.TrimSpace(q.Get("structure_id")); s != "" {
		structure = s
	}
	mq := mandate.Query{StructureID: structure, HolderID: q.Get("holder"), DelegateID: q.Get("delegate"), Limit: 50}
	switch {
	case seesAll(p, structure):
	case people.Can(p, people.PermRequestMandates, structure):
		// Mediators see the mandates they asked for, and only those.
		if mq.DelegateID != "" && mq.DelegateID != p.ID {
			return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: "you may list only your own mandates"})
		}
		mq.DelegateID = p.ID
	case structure != p.StructureID && !p.Platform:
		return problemNotFound(c, "structure")
	default:
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: "you may not list this structure's mandates"})
	}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			st := mandate.State(strings.TrimSpace(s))
			if !slices.Contains(mandate.States(), st) {
				return WriteProblem(c, Problem{Status: http.StatusBadRequest,
					Detail: fmt.Sprintf("state %q is not one of %v", trimForDetail(string(st)), mandate.States())})
			}
			if !slices.Contains(mq.States, st) {
				mq.States = append(mq.States, st)
			}
		}
	}
	if len(mq.HolderID) > 100 || len(mq.DelegateID) > 100 {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "holder and delegate are ids of at most 100 characters"})
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxMandatePage {
			return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: fmt.Sprintf("limit must be a number from 1 to %d", maxMandatePage)})
		}
		mq.Limit = n
	}
	if s := q.Get("before"); s != "" {
		if mq.BeforeCreated, mq.BeforeID, err = parseMandateCursor(s); err != nil {
			return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "before is not a cursor this API gave"})
		}
	}
	limit := mq.Limit
	mq.Limit++ // one more, to know whether a next page exists
	list, err := mh.m.List(c.Request().Context(), mq)
	if err != nil {
		return err
	}
	resp := mandateListResponse{Mandates: make([]MandateJSON, 0, min(len(list), limit))}
	if len(list) > limit {
		list = list[:limit]
		resp.Next = mandateCursor(list[len(list)-1])
	}
	now := mh.clock.Now()
	for _, m := range list {
		resp.Mandates = append(resp.Mandates, toMandateJSON(m, now))
	}
	return noStore(c, resp)
}

func trimForDetail(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (mh mandateHandlers) end(c echo.Context) error {
	p, m, ok, err := mh.staffMandate(c)
	if !ok {
		return err
	}
	var reason mandate.EndReason
	switch {
	case m.DelegateID == p.ID:
		reason = mandate.EndedByDelegate
	case people.Can(p, people.PermManageStaff, m.StructureID):
		reason = mandate.EndedByAdmin
	default:
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: "only the delegate or an admin of the structure may end a mandate"})
	}
	ended, err := mh.m.End(c.Request().Context(), m.ID, reason, mandate.Actor{Kind: mandate.ActorStaff, ID: p.ID, Name: p.DisplayName},
		c.Response().Header().Get(echo.HeaderXRequestID))
	if errors.Is(err, mandate.ErrConflict) {
		return WriteProblem(c, Problem{Status: http.StatusConflict, Detail: "the mandate has already ended"})
	}
	if err != nil {
		return err
	}
	return noStore(c, toMandateJSON(ended, mh.clock.Now()))
}

// PolicyJSON is a structure's policy as the API shows and takes it.
type PolicyJSON struct {
	StructureID          string   `json:"structure_id"`
	AllowedScopes        []string `json:"allowed_scopes"`
	MaxSessionSeconds    int64    `json:"max_session_seconds"`
	MaxDelegationSeconds int64    `json:"max_delegation_seconds"`
	AllowRelaxedPresence bool     `json:"allow_relaxed_presence"`
	UpdatedAt            string   `json:"updated_at,omitempty"`
	UpdatedBy            string   `json:"updated_by,omitempty"`
	// Default: no admin set a policy; mandate.DefaultPolicy applies.
	Default bool `json:"default"`
}

func toPolicyJSON(p mandate.Policy) PolicyJSON {
	return PolicyJSON{StructureID: p.StructureID, AllowedScopes: nonNil(p.AllowedScopes),
		MaxSessionSeconds: int64(p.MaxSessionDuration / time.Second), MaxDelegationSeconds: int64(p.MaxDelegationDuration / time.Second),
		AllowRelaxedPresence: p.AllowRelaxedPresence, UpdatedAt: apiTime(p.UpdatedAt), UpdatedBy: p.UpdatedBy,
		Default: p.UpdatedAt.IsZero()}
}

// staffStructure returns the signed-in staff member and the path's
// structure when they belong to it (or are platform staff); otherwise it
// writes the 401 problem, or the 404 of a structure that does not exist.
func (mh mandateHandlers) staffStructure(c echo.Context) (people.Principal, string, bool, error) {
	p, ok, err := mh.staff(c)
	if !ok {
		return p, "", false, err
	}
	id := c.Param("id")
	if id == "" || len(id) > 100 || (!p.Platform && id != p.StructureID) {
		return p, "", false, problemNotFound(c, "structure")
	}
	return p, id, true, nil
}

func (mh mandateHandlers) getPolicy(c echo.Context) error {
	_, sid, ok, err := mh.staffStructure(c)
	if !ok {
		return err
	}
	pol, err := mh.m.Policy(c.Request().Context(), sid)
	if err != nil {
		return err
	}
	return noStore(c, toPolicyJSON(pol))
}

type putPolicyRequest struct {
	AllowedScopes        []string `json:"allowed_scopes"`
	MaxSessionSeconds    int64    `json:"max_session_seconds"`
	MaxDelegationSeconds int64    `json:"max_delegation_seconds"`
	AllowRelaxedPresence bool     `json:"allow_relaxed_presence"`
}

func (mh mandateHandlers) putPolicy(c echo.Context) error {
	p, sid, ok, err := mh.staffStructure(c)
	if !ok {
		return err
	}
	if !people.Can(p, people.PermManageStaff, sid) {
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: "only the structure's admins may change its policy"})
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return WriteProblem(c, Problem{Status: http.StatusUnsupportedMediaType, Detail: "send the policy as application/json"})
	}
	var req putPolicyRequest
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "the body is not a valid policy object: " + jsonReason(err)})
	}
	const maxSeconds = int64(mandate.MaxDelegationDurationCap/time.Second) * 10
	if req.MaxSessionSeconds < 0 || req.MaxSessionSeconds > maxSeconds || req.MaxDelegationSeconds < 0 || req.MaxDelegationSeconds > maxSeconds {
		return WriteProblem(c, Problem{Status: http.StatusUnprocessableEntity, Title: "Invalid policy", Detail: "durations are out of range"})
	}
	pol, err := mh.m.SetPolicy(c.Request().Context(), mandate.Actor{Kind: mandate.ActorStaff, ID: p.ID, Name: p.DisplayName}, mandate.Policy{
		StructureID: sid, AllowedScopes: req.AllowedScopes,
		MaxSessionDuration:    time.Duration(req.MaxSessionSeconds) * time.Second,
		MaxDelegationDuration: time.Duration(req.MaxDelegationSeconds) * time.Second,
		AllowRelaxedPresence:  req.AllowRelaxedPresence, UpdatedBy: p.ID,
	})
	switch {
	case errors.Is(err, mandate.ErrInvalidRequest):
		return WriteProblem(c, Problem{Status: http.StatusUnprocessableEntity, Title: "Invalid policy", Detail: err.Error()})
	case errors.Is(err, people.ErrForbidden):
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: "only the structure's admins may change its policy"})
	case err != nil:
		return err
	}
	return noStore(c, toPolicyJSON(pol))
}
