package mandate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// DefaultConsentVersion is the consent text shown on approval cards unless
// the service is configured otherwise.
const DefaultConsentVersion = "2026-11"

// consentTexts holds every consent text ever shown, by version then
// language. A version's text never changes once published: a new wording is
// a new version, so a receipt always names the words the holder read.
var consentTexts = map[string]map[string]string{
	"2026-11": {
		"fr": `Vous autorisez une personne à agir sur votre boîte mail.
Elle peut faire seulement ce que vous avez choisi.
Elle peut le faire seulement pendant la durée indiquée.
Elle ne voit pas les messages marqués « personnel », sauf si vous l'acceptez.
Elle ne connaît jamais votre mot de passe.
Si votre présence est demandée, tout s'arrête quand vous fermez cette page.
Vous pouvez tout arrêter à tout moment, avec le bouton « Arrêter ».
Chaque accès à votre boîte mail est enregistré. Vous pouvez voir cet historique.`,
		"en": `You allow someone to act on your mailbox.
They can do only what you chose.
They can do it only for the time shown.
They do not see messages marked "personal", unless you agree.
They never know your password.
If your presence is required, everything stops when you close this page.
You can stop everything at any time, with the "Stop" button.
Every access to your mailbox is recorded. You can see this history.`,
	},
}

// ConsentText returns the consent text of a version in lang ("en", or
// French for anything else); false when the version is unknown.
func ConsentText(version, lang string) (string, bool) {
	texts, ok := consentTexts[version]
	if !ok {
		return "", false
	}
	if lang == "en" {
		return texts["en"], true
	}
	return texts["fr"], true
}

// ConsentTextID names a version's consent text in receipts.
func ConsentTextID(version string) string { return "urn:mandated:consent:" + version }

// ReceiptScope is one granted scope as the receipt shows it.
type ReceiptScope struct {
	Name    string `json:"name"`
	LabelFR string `json:"label_fr"`
}

// Receipt is the consent receipt of one approval: what the holder agreed
// to, in which words. Its hash (Hash) is stored in Mandate.ConsentHash and
// recorded in the audit log, so a printed receipt's QR code can be checked
// against the log.
type Receipt struct {
	Version         string // the consent text's version (ServiceConfig.ConsentVersion)
	ConsentText     string // the consent text's identifier (ConsentTextID)
	MandateID       string
	Kind            Kind
	StructureID     string
	StructureName   string
	HolderID        string
	HolderName      string
	Mailbox         string
	DelegateID      string
	DelegateName    string
	Scopes          []ReceiptScope // sorted by name
	Exclusions      []string       // sorted
	Purpose         string
	PurposeCategory PurposeCategory
	Presence        Presence
	NotBefore       time.Time
	NotAfter        time.Time
	ApprovedAt      time.Time
}

// NewReceipt builds the receipt of m as approved at approvedAt by holder,
// for delegate. The mailbox is the one the mandate covers (m.Mailbox, the
// holder's when m has none). Times are kept to the second, in UTC, so a
// receipt rebuilt from the stored mandate has the same hash.
func NewReceipt(m Mandate, holder, delegate Person, structureName, version string, approvedAt time.Time) Receipt {
	mailbox := m.Mailbox
	if mailbox == "" {
		mailbox = holder.Mailbox
	}
	scopes := make([]ReceiptScope, 0, len(m.Scopes))
	for _, name := range m.Scopes {
		rs := ReceiptScope{Name: name}
		if s, ok := LookupScope(name); ok {
			rs.LabelFR = s.LabelFR
		}
		if !slices.Contains(scopes, rs) {
			scopes = append(scopes, rs)
		}
	}
	slices.SortFunc(scopes, func(a, b ReceiptScope) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	exclusions := slices.Compact(slices.Sorted(slices.Values(m.Exclusions)))
	if exclusions == nil {
		exclusions = []string{}
	}
	return Receipt{
		Version:         version,
		ConsentText:     ConsentTextID(version),
		MandateID:       m.ID,
		Kind:            m.Kind,
		StructureID:     m.StructureID,
		StructureName:   structureName,
		HolderID:        m.HolderID,
		HolderName:      holder.DisplayName,
		Mailbox:         mailbox,
		DelegateID:      m.DelegateID,
		DelegateName:    delegate.DisplayName,
		Scopes:          scopes,
		Exclusions:      exclusions,
		Purpose:         m.Purpose,
		PurposeCategory: m.PurposeCategory,
		Presence:        m.Presence,
		NotBefore:       receiptTime(m.NotBefore),
		NotAfter:        receiptTime(m.NotAfter),
		ApprovedAt:      receiptTime(approvedAt),
	}
}

func receiptTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}

// canonicalReceipt fixes the JSON form: field order, names and time format
// are part of every hash ever printed, so they never change.
type canonicalReceipt struct {
	Version         string         `json:"version"`
	ConsentText     string         `json:"consent_text"`
	MandateID       string         `json:"mandate_id"`
	Kind            string         `json:"kind"`
	StructureID     string         `json:"structure_id"`
	StructureName   string         `json:"structure_name"`
	HolderID        string         `json:"holder_id"`
	HolderName      string         `json:"holder_name"`
	Mailbox         string         `json:"mailbox"`
	DelegateID      string         `json:"delegate_id"`
	DelegateName    string         `json:"delegate_name"`
	Scopes          []ReceiptScope `json:"scopes"`
	Exclusions      []string       `json:"exclusions"`
	Purpose         string         `json:"purpose"`
	PurposeCategory string         `json:"purpose_category"`
	Presence        string         `json:"presence"`
	NotBefore       string         `json:"not_before"`
	NotAfter        string         `json:"not_after"`
	ApprovedAt      string         `json:"approved_at"`
}

// Canonical returns the receipt's canonical JSON: fixed field order, no
// insignificant white space, no HTML escaping, times in RFC 3339 UTC to the
// second ("" when unset), scopes sorted by name and exclusions sorted.
func (r Receipt) Canonical() []byte {
	scopes := slices.Clone(r.Scopes)
	slices.SortStableFunc(scopes, func(a, b ReceiptScope) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	if scopes == nil {
		scopes = []ReceiptScope{}
	}
	exclusions := slices.Sorted(slices.Values(r.Exclusions))
	if exclusions == nil {
		exclusions = []string{}
	}
	c := canonicalReceipt{
		Version: r.Version, ConsentText: r.ConsentText, MandateID: r.MandateID, Kind: string(r.Kind),
		StructureID: r.StructureID, StructureName: r.StructureName,
		HolderID: r.HolderID, HolderName: r.HolderName, Mailbox: r.Mailbox,
		DelegateID: r.DelegateID, DelegateName: r.DelegateName,
		Scopes: scopes, Exclusions: exclusions,
		Purpose: r.Purpose, PurposeCategory: string(r.PurposeCategory), Presence: string(r.Presence),
		NotBefore: canonicalTime(r.NotBefore), NotAfter: canonicalTime(r.NotAfter), ApprovedAt: canonicalTime(r.ApprovedAt),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		// Only strings and slices of strings: encoding cannot fail.
		panic("mandate: encode receipt: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func canonicalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Hash returns the hex SHA-256 of the canonical receipt.
func (r Receipt) Hash() string { return receiptHash(r.Canonical()) }

// receiptHash is the hex SHA-256 of a canonical receipt's bytes.
func receiptHash(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// ParseReceipt reads back a receipt from its canonical JSON (Canonical), as
// stored in Mandate.ConsentReceipt at approval. It accepts only the
// canonical form itself — every field, in order, no other member, no extra
// white space, times in RFC 3339 UTC to the second — so the receipt it
// returns hashes (Hash) to the SHA-256 of b.
func ParseReceipt(b []byte) (Receipt, error) {
	var c canonicalReceipt
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Receipt{}, fmt.Errorf("parse receipt: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Receipt{}, errors.New("parse receipt: data after the receipt")
	}
	var times [3]time.Time
	for i, v := range []string{c.NotBefore, c.NotAfter, c.ApprovedAt} {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return Receipt{}, fmt.Errorf("parse receipt: %w", err)
		}
		times[i] = t.UTC()
	}
	r := Receipt{
		Version: c.Version, ConsentText: c.ConsentText, MandateID: c.MandateID, Kind: Kind(c.Kind),
		StructureID: c.StructureID, StructureName: c.StructureName,
		HolderID: c.HolderID, HolderName: c.HolderName, Mailbox: c.Mailbox,
		DelegateID: c.DelegateID, DelegateName: c.DelegateName,
		Scopes: c.Scopes, Exclusions: c.Exclusions,
		Purpose: c.Purpose, PurposeCategory: PurposeCategory(c.PurposeCategory), Presence: Presence(c.Presence),
		NotBefore: times[0], NotAfter: times[1], ApprovedAt: times[2],
	}
	if !bytes.Equal(r.Canonical(), b) {
		return Receipt{}, errors.New("parse receipt: not in canonical form")
	}
	return r, nil
}
