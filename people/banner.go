package people

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// Audience is whose home page a banner shows on.
type Audience string

// Audiences.
const (
	AudienceHolders Audience = "holders" // the holders' home page
	AudienceStaff   Audience = "staff"   // the mediators' (staff) home page
)

// ParseAudience checks an audience name.
func ParseAudience(s string) (Audience, error) {
	switch a := Audience(strings.TrimSpace(s)); a {
	case AudienceHolders, AudienceStaff:
		return a, nil
	}
	return "", ErrInvalidAudience
}

// Banner is a message admins post on home pages between two dates.
type Banner struct {
	ID string
	// StructureID is the structure whose pages show it; "" for a
	// platform-wide banner (platform admins), shown everywhere.
	StructureID string
	Audience    Audience
	TextFR      string // required
	TextEN      string // optional; French is shown when empty
	StartsAt    time.Time
	EndsAt      time.Time // after StartsAt
	CreatedBy   string    // staff id
	CreatedAt   time.Time
}

// Text is the banner in lang, French when there is no English text.
func (b Banner) Text(lang string) string {
	if lang == "en" && b.TextEN != "" {
		return b.TextEN
	}
	return b.TextFR
}

// BannerStore persists banners. Methods return errors wrapping
// mandate.ErrNotFound.
type BannerStore interface {
	CreateBanner(ctx context.Context, b Banner) error
	GetBanner(ctx context.Context, id string) (Banner, error)
	// UpdateBanner replaces a banner's audience, texts and dates.
	UpdateBanner(ctx context.Context, b Banner) error
	DeleteBanner(ctx context.Context, id string) error
	// ListBanners returns a structure's banners ("" for the platform-wide
	// ones), past, current and future, newest start first.
	ListBanners(ctx context.Context, structureID string) ([]Banner, error)
	// CurrentBanners returns the banners for audience shown at now on the
	// pages of any of structureIDs, platform-wide ones included, oldest
	// start first.
	CurrentBanners(ctx context.Context, audience Audience, structureIDs []string, now time.Time) ([]Banner, error)
}

// Banner limits.
const (
	MaxBannerText     = 500 // characters, each language
	MaxBannerDuration = 366 * 24 * time.Hour
	// PlatformWide names the platform-wide banners where a structure id is expected.
	PlatformWide = ""
)

// Banner errors, worded for pages.
var (
	ErrInvalidAudience  = errors.New("choose whose pages show the banner")
	ErrBannerTextFR     = errors.New("enter the banner's French text, at most 500 characters")
	ErrBannerTextEN     = errors.New("the English text has at most 500 characters")
	ErrBannerDates      = errors.New("the end must come after the start, at most a year later")
	ErrBannerEndsInPast = errors.New("the end date is already past")
)

// BannerInput is what an admin writes.
type BannerInput struct {
	Audience string
	TextFR   string
	TextEN   string
	StartsAt time.Time
	EndsAt   time.Time
}

func (a *Admin) checkBanner(in BannerInput) (Banner, error) {
	aud, err := ParseAudience(in.Audience)
	if err != nil {
		return Banner{}, err
	}
	fr, en := strings.TrimSpace(in.TextFR), strings.TrimSpace(in.TextEN)
	if fr == "" || utf8.RuneCountInString(fr) > MaxBannerText || !bannerText(fr) {
		return Banner{}, ErrBannerTextFR
	}
	if utf8.RuneCountInString(en) > MaxBannerText || !bannerText(en) {
		return Banner{}, ErrBannerTextEN
	}
	if in.StartsAt.IsZero() || in.EndsAt.IsZero() || !in.EndsAt.After(in.StartsAt) || in.EndsAt.Sub(in.StartsAt) > MaxBannerDuration {
		return Banner{}, ErrBannerDates
	}
	if !in.EndsAt.After(a.svc.clock.Now()) {
		return Banner{}, ErrBannerEndsInPast
	}
	return Banner{Audience: aud, TextFR: fr, TextEN: en, StartsAt: in.StartsAt.UTC(), EndsAt: in.EndsAt.UTC()}, nil
}

// bannerText allows line breaks but no other control character.
func bannerText(s string) bool {
	return printable(strings.NewReplacer("\r\n", " ", "\n", " ").Replace(s))
}

// CheckBannerScope reports whether p may manage the banners of structureID
// (PlatformWide: platform admins only): ErrForbidden or ErrNotFound.
func (a *Admin) CheckBannerScope(ctx context.Context, p Principal, structureID string) error {
	if structureID == PlatformWide {
		if !MayEver(p, PermManageBanners) {
			return fmt.Errorf("%w: %s", ErrForbidden, PermManageBanners)
		}
		if !p.Platform {
			return fmt.Errorf("%w: platform-wide banners", ErrForbidden)
		}
		return nil
	}
	return a.checkStructure(ctx, p, PermManageBanners, structureID)
}

// Banners lists the banners of a structure (PlatformWide: the platform-wide ones).
func (a *Admin) Banners(ctx context.Context, p Principal, structureID string) ([]Banner, error) {
	if err := a.CheckBannerScope(ctx, p, structureID); err != nil {
		return nil, err
	}
	list, err := a.store.ListBanners(ctx, structureID)
	if err != nil {
		return nil, fmt.Errorf("list banners: %w", err)
	}
	return list, nil
}

// Banner returns one banner of a structure.
func (a *Admin) Banner(ctx context.Context, p Principal, structureID, id string) (Banner, error) {
	if err := a.CheckBannerScope(ctx, p, structureID); err != nil {
		return Banner{}, err
	}
	b, err := a.store.GetBanner(ctx, id)
	if errors.Is(err, mandate.ErrNotFound) || (err == nil && b.StructureID != structureID) {
		return Banner{}, ErrNotFound
	}
	if err != nil {
		return Banner{}, fmt.Errorf("load banner %s: %w", id, err)
	}
	return b, nil
}

// PostBanner creates a banner, audited (banner.posted).
func (a *Admin) PostBanner(ctx context.Context, p Principal, structureID string, in BannerInput) (Banner, error) {
	if err := a.CheckBannerScope(ctx, p, structureID); err != nil {
		return Banner{}, err
	}
	b, err := a.checkBanner(in)
	if err != nil {
		return Banner{}, err
	}
	b.ID, b.StructureID, b.CreatedBy, b.CreatedAt = uuid.NewString(), structureID, p.ID, a.svc.clock.Now()
	if err := a.recordBanner(ctx, p, audit.ActionBannerPosted, b); err != nil {
		return Banner{}, err
	}
	if err := a.store.CreateBanner(ctx, b); err != nil {
		return Banner{}, fmt.Errorf("post banner: %w", err)
	}
	return b, nil
}

// ChangeBanner replaces a banner's audience, texts and dates, audited.
func (a *Admin) ChangeBanner(ctx context.Context, p Principal, structureID, id string, in BannerInput) (Banner, error) {
	old, err := a.Banner(ctx, p, structureID, id)
	if err != nil {
		return Banner{}, err
	}
	b, err := a.checkBanner(in)
	if err != nil {
		return Banner{}, err
	}
	b.ID, b.StructureID, b.CreatedBy, b.CreatedAt = old.ID, old.StructureID, old.CreatedBy, old.CreatedAt
	if err := a.recordBanner(ctx, p, audit.ActionBannerChanged, b); err != nil {
		return Banner{}, err
	}
	if err := a.store.UpdateBanner(ctx, b); err != nil {
		if errors.Is(err, mandate.ErrNotFound) {
			return Banner{}, ErrNotFound
		}
		return Banner{}, fmt.Errorf("change banner: %w", err)
	}
	return b, nil
}

// DeleteBanner removes a banner, audited.
func (a *Admin) DeleteBanner(ctx context.Context, p Principal, structureID, id string) error {
	b, err := a.Banner(ctx, p, structureID, id)
	if err != nil {
		return err
	}
	if err := a.recordBanner(ctx, p, audit.ActionBannerDeleted, b); err != nil {
		return err
	}
	if err := a.store.DeleteBanner(ctx, id); err != nil && !errors.Is(err, mandate.ErrNotFound) {
		return fmt.Errorf("delete banner: %w", err)
	}
	return nil
}

// recordBanner records a banner event. The texts are not recorded (they may
// name people); the audience, dates and id are.
func (a *Admin) recordBanner(ctx context.Context, p Principal, action audit.Action, b Banner) error {
	scope := b.StructureID
	if scope == PlatformWide {
		scope = "platform"
	}
	return a.svc.record(ctx, audit.Event{
		Actor: staffActor(p.ID, p.DisplayName), Structure: b.StructureID, Action: action, Outcome: audit.OutcomeSuccess,
		Reason: fmt.Sprintf("banner=%s scope=%s audience=%s from=%s to=%s", b.ID, scope, b.Audience,
			b.StartsAt.UTC().Format(time.RFC3339), b.EndsAt.UTC().Format(time.RFC3339)),
	})
}

// BannersFor returns the banners shown now on audience's home page for
// people of structureIDs (a mediator: their structure; a holder: every
// structure serving them), platform-wide ones included. It needs no
// principal: home pages show them to whoever is signed in there.
func (a *Admin) BannersFor(ctx context.Context, audience Audience, structureIDs ...string) ([]Banner, error) {
	list, err := a.store.CurrentBanners(ctx, audience, structureIDs, a.svc.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("current banners: %w", err)
	}
	return list, nil
}
