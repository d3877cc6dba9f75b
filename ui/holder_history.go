package ui

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
)

// holderHistoryPageSize is how many events one page of the history shows.
const holderHistoryPageSize = 20

// StaffReader finds a staff member by id (the people store), to name the
// staff of events that carry only their id (events reported by mail
// clients).
type StaffReader interface {
	GetStaff(ctx context.Context, id string) (people.Staff, error)
}

// HolderHistory is the holder's "who accessed my mailbox" page, GET
// /holder/history: the audit events recorded for the signed-in holder,
// newest first, each as one plain sentence. A holder sees their own events
// only: the query's holder filter is the session's holder id, never a
// request parameter.
type HolderHistory struct {
	ui    *UI
	log   *audit.Log
	staff StaffReader
	loc   *time.Location
}

// NewHolderHistory builds the page over the UI's sessions and rendering,
// the audit log and, optionally (nil), a staff reader naming staff whose
// events carry no name.
func NewHolderHistory(u *UI, log *audit.Log, staff StaffReader) *HolderHistory {
	loc, err := time.LoadLocation("Europe/Paris") // time/tzdata: imported by account.go
	if err != nil {
		loc = time.UTC
	}
	return &HolderHistory{ui: u, log: log, staff: staff, loc: loc}
}

// Register adds the page to e.
func (h *HolderHistory) Register(e *echo.Echo) {
	e.GET("/holder/history", h.page)
}

// historyRow is one event as the page shows it.
type historyRow struct {
	Sentence   string
	When       string // Paris time, in words
	Datetime   string // RFC 3339, for <time datetime>
	OutcomeKey string // "" for a success
	Mandate    string
	Client     string
}

type historyData struct {
	Rows   []historyRow
	Older  string // URL of the older page, or ""
	Newest string // URL of the first page when this is not it, or ""
}

func (h *HolderHistory) page(c echo.Context) error {
	u := h.ui
	p, ok := u.CurrentPrincipal(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/holder/signin?return_to=%2Fholder%2Fhistory")
	}
	if p.Kind != "holder" || p.ID == "" {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	f := audit.Filter{Holder: p.ID, Limit: holderHistoryPageSize}
	if before, err := strconv.ParseInt(c.QueryParam("before"), 10, 64); err == nil && before > 0 {
		f.Before = before
	}
	ctx := c.Request().Context()
	res, err := h.log.Query(ctx, f)
	if err != nil {
		return u.internalError(c, err)
	}
	pg := u.newPage(c)
	n := namer{h: h, ctx: ctx, lang: pg.Lang, structures: map[string]string{}, staff: map[string]people.Staff{}}
	var d historyData
	for _, e := range res.Events {
		if e.Holder != p.ID { // the filter's own guarantee, checked again
			continue
		}
		d.Rows = append(d.Rows, n.row(e, p.ID))
	}
	if res.Next > 0 {
		d.Older = "/holder/history?before=" + strconv.FormatInt(res.Next, 10)
	}
	if f.Before > 0 {
		d.Newest = "/holder/history"
	}
	pg.Data = d
	return u.render(c, http.StatusOK, "holder-history.html", pg)
}

// namer turns events into sentences in one language, looking each staff
// member and structure up once per page.
type namer struct {
	h          *HolderHistory
	ctx        context.Context
	lang       string
	structures map[string]string // id → name ("" when unknown)
	staff      map[string]people.Staff
}

// tr is message key in n's language, formatted with args.
func (n *namer) tr(key string, args ...any) string {
	m, ok := lookupMessage(key)
	if !ok {
		return key
	}
	s := m.fr
	if n.lang == "en" {
		s = m.en
	}
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s
}

func (n *namer) has(key string) bool {
	_, ok := lookupMessage(key)
	return ok
}

func (n *namer) structureName(id string) string {
	if id == "" {
		return ""
	}
	if name, ok := n.structures[id]; ok {
		return name
	}
	name := ""
	if st, err := n.h.ui.people.Structure(n.ctx, id); err == nil {
		name = st.Name
	}
	n.structures[id] = name
	return name
}

func (n *namer) staffMember(id string) (people.Staff, bool) {
	if n.h.staff == nil || id == "" {
		return people.Staff{}, false
	}
	if s, ok := n.staff[id]; ok {
		return s, s.ID != ""
	}
	s, err := n.h.staff.GetStaff(n.ctx, id)
	if err != nil {
		s = people.Staff{}
	}
	n.staff[id] = s
	return s, s.ID != ""
}

// who names the actor of e, for a holder who is not the actor.
func (n *namer) who(e audit.Event) string {
	switch e.Actor.Kind {
	case audit.ActorStaff:
		if e.Actor.ID == "" && e.Actor.Name == "" {
			return n.tr("holder.history.who.erased")
		}
		name, structure := e.Actor.Name, n.structureName(e.Structure)
		if name == "" || structure == "" {
			if s, ok := n.staffMember(e.Actor.ID); ok {
				if name == "" {
					name = s.DisplayName
				}
				if structure == "" {
					structure = n.structureName(s.StructureID)
				}
			}
		}
		switch {
		case name != "" && structure != "":
			return n.tr("holder.history.who.staffat", name, structure)
		case name != "":
			return name
		case structure != "":
			return n.tr("holder.history.who.someoneat", structure)
		}
		return n.tr("holder.history.who.someone")
	case audit.ActorHolder:
		if e.Actor.ID == "" {
			return n.tr("holder.history.who.erased")
		}
		return n.tr("holder.history.who.holder")
	case audit.ActorClient:
		if e.Actor.ID == "" {
			return n.tr("holder.history.who.app")
		}
		return n.tr("holder.history.who.client", e.Actor.ID)
	case audit.ActorSystem:
		return n.tr("holder.history.who.system")
	}
	return n.tr("holder.history.who.unknown")
}

// sentence says e in one plain sentence, for holder.
func (n *namer) sentence(e audit.Event, holder string) string {
	if e.Actor.Kind == audit.ActorHolder && e.Actor.ID == holder {
		if key := "holder.history.you." + string(e.Action); n.has(key) {
			return n.tr(key) + "."
		}
		return n.tr("holder.history.you.other", string(e.Action)) + "."
	}
	what := n.tr("holder.history.act.other", string(e.Action))
	if key := "holder.history.act." + string(e.Action); n.has(key) {
		what = n.tr(key)
	}
	return n.who(e) + " " + what + "."
}

func (n *namer) row(e audit.Event, holder string) historyRow {
	t := e.Time.In(n.h.loc)
	r := historyRow{Sentence: n.sentence(e, holder), Datetime: e.Time.UTC().Format(time.RFC3339),
		When: n.tr("holder.history.when", formatDate(n.lang, t), t.Format("15:04")), Mandate: e.MandateID}
	if e.ClientID != "" && !(e.Actor.Kind == audit.ActorClient && e.Actor.ID == e.ClientID) {
		r.Client = e.ClientID
	}
	switch e.Outcome {
	case audit.OutcomeSuccess:
	case audit.OutcomeDenied:
		r.OutcomeKey = "holder.history.denied"
	default:
		r.OutcomeKey = "holder.history.failed"
	}
	return r
}
