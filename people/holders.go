package people

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// HoldersStore is what the holders service persists through: holders and
// their structures, one-time codes, the sign-in failure counters shared with
// staff sign-in, and transactions (a CSV import is all or nothing).
// *store.Store implements it.
type HoldersStore interface {
	HolderStore
	CodeStore
	RecordSignInFailure(ctx context.Context, key string, at time.Time, windowStart time.Time) (int, error)
	CountSignInFailures(ctx context.Context, key string, windowStart time.Time) (int, error)
	ClearSignInFailures(ctx context.Context, key string) error
	// BeginTX returns a context carrying a new transaction: every store
	// method called with it runs inside it until Commit or Rollback.
	BeginTX(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// HoldersConfig configures the holders service; zero fields take the
// defaults. Store and CodeKey are required.
type HoldersConfig struct {
	Store HoldersStore
	// Notifier delivers one-time codes; nil means no code can be sent
	// (SendCode fails with notify.ErrNoChannel).
	Notifier notify.Notifier
	// CodeKey keys the HMAC-SHA256 under which codes are stored (at least
	// 16 bytes; the binary derives 32 from the master key).
	CodeKey []byte
	// Channels are where codes go, in order of preference, among the
	// contacts the holder has: SMS then email by default. A channel whose
	// delivery fails passes to the next.
	Channels []notify.Channel
	Recorder Recorder // *audit.Log; nil records nothing (tests about other things)
	Clock    mandate.Clock
	Logger   *slog.Logger

	// CodeTTL is how long a code works; 10 minutes.
	CodeTTL time.Duration
	// CodeDigits is the length of a code, 6 to 8; 8.
	CodeDigits int
	// MaxCodeAttempts wrong tries void a code; 5.
	MaxCodeAttempts int
	// MaxCodesPerHour codes may be sent to one holder per hour; 5.
	MaxCodesPerHour int
	// ThrottleWindow is the sliding window in which failures and code
	// requests per address count; 15 minutes (as staff sign-in, whose sweep
	// prunes the counters older than that).
	ThrottleWindow time.Duration
	// MaxHolderFailures wrong codes within the window lock a holder's code
	// sign-in; 5.
	MaxHolderFailures int
	// MaxIPFailures failures within the window block an IP address; 20
	// (shared with staff sign-in: the same "ip:" counter).
	MaxIPFailures int
	// MaxIPCodeRequests code requests within the window from one IP
	// address; 30 (a structure's office may share one public address).
	MaxIPCodeRequests int
	// MaxImportBytes and MaxImportRows bound a CSV import; 1 MiB and 10,000.
	MaxImportBytes int64
	MaxImportRows  int
}

func (c HoldersConfig) withDefaults() HoldersConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.CodeTTL <= 0 {
		c.CodeTTL = 10 * time.Minute
	}
	def(&c.CodeDigits, 8)
	def(&c.MaxCodeAttempts, 5)
	def(&c.MaxCodesPerHour, 5)
	def(&c.MaxHolderFailures, 5)
	def(&c.MaxIPFailures, 20)
	def(&c.MaxIPCodeRequests, 30)
	def(&c.MaxImportRows, 10000)
	if c.ThrottleWindow <= 0 {
		c.ThrottleWindow = 15 * time.Minute
	}
	if c.MaxImportBytes <= 0 {
		c.MaxImportBytes = 1 << 20
	}
	if c.Recorder == nil {
		c.Recorder = nopRecorder{}
	}
	if len(c.Channels) == 0 {
		c.Channels = []notify.Channel{notify.SMS, notify.Email}
	}
	if c.Clock == nil {
		c.Clock = mandate.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Holders runs the holder use cases: records created by staff (one by one
// or imported from CSV), looked up within the structures that serve them,
// and one-time codes with which holders sign in on their phone.
type Holders struct {
	store HoldersStore
	cfg   HoldersConfig
	clock mandate.Clock
	log   *slog.Logger
}

// NewHolders returns the holders service.
func NewHolders(cfg HoldersConfig) (*Holders, error) {
	if cfg.Store == nil {
		return nil, errors.New("holders: no store")
	}
	if len(cfg.CodeKey) < 16 {
		return nil, errors.New("holders: the code key must have at least 16 bytes")
	}
	if cfg.CodeDigits != 0 && (cfg.CodeDigits < 6 || cfg.CodeDigits > 8) {
		return nil, fmt.Errorf("holders: codes have 6 to 8 digits, not %d", cfg.CodeDigits)
	}
	cfg = cfg.withDefaults()
	return &Holders{store: cfg.Store, cfg: cfg, clock: cfg.Clock, log: cfg.Logger}, nil
}

// Config returns the effective configuration (defaults filled in).
func (h *Holders) Config() HoldersConfig { return h.cfg }

// Validation errors of a holder's fields, worded so a page can show them.
var (
	ErrInvalidMailbox      = errors.New("the mailbox is not a valid email address")
	ErrInvalidDisplayName  = errors.New("enter the holder's name, at most 100 characters")
	ErrInvalidPhone        = errors.New("the phone number is not valid: French mobile (06…) or international (+…)")
	ErrInvalidContactEmail = errors.New("the contact email is not a valid email address")
	ErrInvalidLanguage     = errors.New("the language must be fr or en")
	ErrNoContact           = errors.New("give a phone number or a contact email: codes are sent there")
)

// HolderInput is a holder as typed by staff or read from a CSV row.
type HolderInput struct {
	Mailbox     string
	DisplayName string
	Phone       string
	Email       string
	Language    string
}

// FieldError is one invalid field of a HolderInput ("mailbox",
// "display_name", "phone", "email", "language").
type FieldError struct {
	Field string
	Err   error
}

// InvalidHolderError lists every invalid field of a HolderInput.
type InvalidHolderError struct{ Fields []FieldError }

func (e *InvalidHolderError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Err.Error()
	}
	return "invalid holder: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is find each field's error.
func (e *InvalidHolderError) Unwrap() []error {
	out := make([]error, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f.Err
	}
	return out
}

// NormalizeHolder checks in and returns the holder it describes (without
// ID or dates), or an *InvalidHolderError naming every bad field. The
// mailbox and the contact email are lower-cased, the phone normalised to
// E.164 (a French number 06 12 34 56 78 becomes +33612345678), the
// language defaults to French.
func NormalizeHolder(in HolderInput) (Holder, error) {
	var h Holder
	var bad []FieldError
	var err error
	if h.Mailbox, err = NormalizeEmail(in.Mailbox); err != nil {
		bad = append(bad, FieldError{"mailbox", ErrInvalidMailbox})
	}
	if h.DisplayName, err = normalizeDisplayName(in.DisplayName); err != nil {
		bad = append(bad, FieldError{"display_name", err})
	}
	if strings.TrimSpace(in.Phone) != "" {
		if h.Phone, err = NormalizePhone(in.Phone); err != nil {
			bad = append(bad, FieldError{"phone", err})
		}
	}
	if strings.TrimSpace(in.Email) != "" {
		if h.Email, err = NormalizeEmail(in.Email); err != nil {
			bad = append(bad, FieldError{"email", ErrInvalidContactEmail})
		}
	}
	switch l := strings.ToLower(strings.TrimSpace(in.Language)); l {
	case "", "fr":
		h.Language = "fr"
	case "en":
		h.Language = "en"
	default:
		bad = append(bad, FieldError{"language", ErrInvalidLanguage})
	}
	if strings.TrimSpace(in.Phone) == "" && strings.TrimSpace(in.Email) == "" {
		bad = append(bad, FieldError{"phone", ErrNoContact})
	}
	if len(bad) > 0 {
		return Holder{}, &InvalidHolderError{Fields: bad}
	}
	return h, nil
}

func normalizeDisplayName(name string) (string, error) {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) {
		return "", ErrInvalidDisplayName
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", ErrInvalidDisplayName
		}
	}
	return name, nil
}

// NormalizePhone turns a phone number into E.164: spaces, dots, dashes and
// brackets go; "00" becomes "+"; a French national number (ten digits
// starting with 0, e.g. 06 12 34 56 78) becomes +33 without its 0. The
// result is "+" then 8 to 15 digits, the first not 0.
func NormalizePhone(phone string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(phone) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '.' || r == '-' || r == '(' || r == ')' || r == '\u00a0':
		default:
			return "", ErrInvalidPhone
		}
	}
	p := b.String()
	switch {
	case strings.HasPrefix(p, "00"):
		p = "+" + p[2:]
	case len(p) == 10 && p[0] == '0' && p[1] != '0':
		p = "+33" + p[1:]
	}
	if len(p) < 9 || len(p) > 16 || p[0] != '+' || p[1] == '0' {
		return "", ErrInvalidPhone
	}
	if strings.HasPrefix(p, "+33") && len(p) != 12 { // France: +33 and 9 digits
		return "", ErrInvalidPhone
	}
	return p, nil
}

// MaskPhone shows only the last two digits of a phone number
// ("+33 •• •• •• •• 78"): staff see where a code goes without reading a
// person's number back.
func MaskPhone(p string) string {
	if len(p) < 4 {
		return strings.Repeat("•", len(p))
	}
	return p[:3] + " " + strings.Repeat("•", len(p)-5) + " " + p[len(p)-2:]
}

// MaskEmail shows the first letter and the domain of an address
// ("m•••@example.org").
func MaskEmail(e string) string {
	at := strings.LastIndex(e, "@")
	if at < 1 {
		return "•••"
	}
	first, _ := utf8.DecodeRuneInString(e)
	return string(first) + "•••" + e[at:]
}

// CreateResult says what Create did.
type CreateResult struct {
	Holder Holder
	// Linked: the mailbox had a record already; it is now also served by the
	// structure, and its name and contacts were left as they were.
	Linked bool
}

// Create records a holder for structureID, on behalf of staff member by.
// There is one record per mailbox: when the mailbox exists already (another
// structure serves the same person), the record is linked to structureID
// instead, and the name and contacts given are ignored — a second
// structure cannot redirect where a person's codes go. Linking a holder the
// structure serves already changes nothing.
func (h *Holders) Create(ctx context.Context, by Principal, structureID string, in HolderInput) (CreateResult, error) {
	if err := Authorize(by, PermServeHolders, structureID); err != nil {
		return CreateResult{}, err
	}
	holder, err := NormalizeHolder(in)
	if err != nil {
		return CreateResult{}, err
	}
	existing, err := h.store.FindHolderByMailbox(ctx, holder.Mailbox)
	switch {
	case err == nil:
		return h.link(ctx, by, structureID, existing, "")
	case !errors.Is(err, mandate.ErrNotFound):
		return CreateResult{}, fmt.Errorf("find holder: %w", err)
	}
	holder.ID = uuid.NewString()
	holder.CreatedAt = h.clock.Now()
	if err := h.record(ctx, audit.Event{
		Actor: staffActor(by.ID, by.DisplayName), Holder: holder.ID, Structure: structureID,
		Action: audit.ActionHolderCreated, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return CreateResult{}, fmt.Errorf("create holder: %w", err)
	}
	err = h.store.CreateHolder(ctx, holder, structureID)
	if errors.Is(err, mandate.ErrAlreadyExists) { // created meanwhile by someone else
		existing, ferr := h.store.FindHolderByMailbox(ctx, holder.Mailbox)
		if ferr != nil {
			return CreateResult{}, fmt.Errorf("create holder: %w", err)
		}
		return h.link(ctx, by, structureID, existing, "")
	}
	if err != nil {
		return CreateResult{}, fmt.Errorf("create holder %s: %w", holder.ID, err)
	}
	h.log.InfoContext(ctx, "holder created", "holder_id", holder.ID, "structure_id", structureID)
	return CreateResult{Holder: holder}, nil
}

// link links an existing holder to structureID (recorded first).
func (h *Holders) link(ctx context.Context, by Principal, structureID string, holder Holder, reason string) (CreateResult, error) {
	served, err := h.store.HolderServedBy(ctx, holder.ID, structureID)
	if err != nil {
		return CreateResult{}, fmt.Errorf("link holder %s: %w", holder.ID, err)
	}
	if served {
		return CreateResult{Holder: holder, Linked: true}, nil
	}
	if err := h.record(ctx, audit.Event{
		Actor: staffActor(by.ID, by.DisplayName), Holder: holder.ID, Structure: structureID,
		Action: audit.ActionHolderLinked, Outcome: audit.OutcomeSuccess, Reason: reason,
	}); err != nil {
		return CreateResult{}, fmt.Errorf("link holder: %w", err)
	}
	if err := h.store.LinkHolder(ctx, holder.ID, structureID, h.clock.Now()); err != nil {
		return CreateResult{}, fmt.Errorf("link holder %s: %w", holder.ID, err)
	}
	h.log.InfoContext(ctx, "holder linked", "holder_id", holder.ID, "structure_id", structureID)
	return CreateResult{Holder: holder, Linked: true}, nil
}

// Get returns a holder the structure serves. A holder of another structure
// is mandate.ErrNotFound, exactly like an unknown id.
func (h *Holders) Get(ctx context.Context, by Principal, structureID, id string) (Holder, error) {
	if err := Authorize(by, PermServeHolders, structureID); err != nil {
		return Holder{}, err
	}
	if id == "" || len(id) > 100 {
		return Holder{}, fmt.Errorf("holder %q: %w", id, mandate.ErrNotFound)
	}
	served, err := h.store.HolderServedBy(ctx, id, structureID)
	if err != nil {
		return Holder{}, fmt.Errorf("load holder %s: %w", id, err)
	}
	if !served {
		return Holder{}, fmt.Errorf("holder %s: %w", id, mandate.ErrNotFound)
	}
	holder, err := h.store.GetHolder(ctx, id)
	if err != nil {
		return Holder{}, fmt.Errorf("load holder %s: %w", id, err)
	}
	return holder, nil
}

// HolderPage is one page of a structure's holders.
type HolderPage struct {
	Holders []Holder
	// Next is the After of the next page; "" on the last page.
	Next string
}

// MaxHolderPage is the most holders List returns at once.
const MaxHolderPage = 200

// List pages through the holders a structure serves, by mailbox; 50 per
// page unless q.Limit says otherwise (at most MaxHolderPage).
func (h *Holders) List(ctx context.Context, by Principal, structureID string, q HolderQuery) (HolderPage, error) {
	if err := Authorize(by, PermServeHolders, structureID); err != nil {
		return HolderPage{}, err
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, MaxHolderPage)
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 254 {
		q.Search = q.Search[:254]
	}
	if len(q.After) > 254 {
		q.After = q.After[:254]
	}
	q.Limit++ // one more tells whether there is a next page
	list, err := h.store.ListHolders(ctx, structureID, q)
	if err != nil {
		return HolderPage{}, fmt.Errorf("list holders: %w", err)
	}
	var page HolderPage
	if len(list) == q.Limit {
		list = list[:q.Limit-1]
		page.Next = list[len(list)-1].Mailbox
	}
	page.Holders = list
	return page, nil
}

// Count is how many holders a structure serves.
func (h *Holders) Count(ctx context.Context, by Principal, structureID string) (int, error) {
	if err := Authorize(by, PermServeHolders, structureID); err != nil {
		return 0, err
	}
	n, err := h.store.CountHolders(ctx, structureID)
	if err != nil {
		return 0, fmt.Errorf("count holders: %w", err)
	}
	return n, nil
}

// record records e; it must not run inside a store transaction.
func (h *Holders) record(ctx context.Context, e audit.Event) error {
	if _, err := h.cfg.Recorder.Record(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

func holderActor(id string) audit.Actor {
	return audit.Actor{Kind: audit.ActorHolder, ID: id}
}
