package mandate_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
)

var receiptT0 = time.Date(2030, 3, 4, 10, 0, 5, 123456789, time.UTC)

func receiptMandate() mandate.Mandate {
	return mandate.Mandate{
		ID: "m1", Kind: mandate.KindSession, StructureID: "s1", HolderID: "h1", Mailbox: "awa@example.org",
		DelegateID: "st1", ClientID: "console",
		Scopes:     []string{mandate.ScopeMailSend, mandate.ScopeMailRead},
		Exclusions: []string{mandate.ExcludePersonal},
		Purpose:    "Dossier CAF <urgent> & \"prime\"", PurposeCategory: mandate.PurposeSocial,
		Presence: mandate.PresenceRequired, Duration: 30 * time.Minute,
		NotBefore: receiptT0, NotAfter: receiptT0.Add(30 * time.Minute),
	}
}

var (
	receiptHolder   = mandate.Person{ID: "h1", DisplayName: "Awa Diallo", Mailbox: "other@example.org", Active: true}
	receiptDelegate = mandate.Person{ID: "st1", DisplayName: "Marie Curie", StructureID: "s1", Active: true}
)

func TestReceiptCanonicalForm(t *testing.T) {
	r := mandate.NewReceipt(receiptMandate(), receiptHolder, receiptDelegate, "France Services Lyon 3", "2026-11", receiptT0)
	want := `{"version":"2026-11","consent_text":"urn:mandated:consent:2026-11","mandate_id":"m1","kind":"session",` +
		`"structure_id":"s1","structure_name":"France Services Lyon 3","holder_id":"h1","holder_name":"Awa Diallo",` +
		`"mailbox":"awa@example.org","delegate_id":"st1","delegate_name":"Marie Curie",` +
		`"scopes":[{"name":"mail.read","label_fr":"Lire les messages"},{"name":"mail.send","label_fr":"Envoyer des messages"}],` +
		`"exclusions":["personal"],"purpose":"Dossier CAF <urgent> & \"prime\"","purpose_category":"social",` +
		`"presence":"required","not_before":"2030-03-04T10:00:05Z","not_after":"2030-03-04T10:30:05Z",` +
		`"approved_at":"2030-03-04T10:00:05Z"}`
	if got := string(r.Canonical()); got != want {
		t.Fatalf("canonical receipt:\n got %s\nwant %s", got, want)
	}
	if !json.Valid(r.Canonical()) {
		t.Fatal("canonical receipt is not JSON")
	}
	sum := sha256.Sum256([]byte(want))
	if r.Hash() != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash = %s, want the SHA-256 of the canonical form", r.Hash())
	}
}

func TestReceiptHashIgnoresOrderZonesAndStoragePrecision(t *testing.T) {
	base := mandate.NewReceipt(receiptMandate(), receiptHolder, receiptDelegate, "FS Lyon", "2026-11", receiptT0)

	m := receiptMandate()
	m.Scopes = []string{mandate.ScopeMailRead, mandate.ScopeMailSend, mandate.ScopeMailRead}
	paris := time.FixedZone("Paris", 3600)
	m.NotBefore = m.NotBefore.Truncate(time.Microsecond).In(paris) // as read back from the store
	m.NotAfter = m.NotAfter.Truncate(time.Microsecond).In(paris)
	again := mandate.NewReceipt(m, receiptHolder, receiptDelegate, "FS Lyon", "2026-11", receiptT0.Truncate(time.Microsecond).In(paris))
	if again.Hash() != base.Hash() {
		t.Fatalf("same receipt, different hash:\n%s\n%s", base.Canonical(), again.Canonical())
	}

	// A receipt built by hand, its lists unsorted, canonicalizes the same.
	shuffled := base
	shuffled.Scopes = []mandate.ReceiptScope{base.Scopes[1], base.Scopes[0]}
	if shuffled.Hash() != base.Hash() {
		t.Fatal("scope order changes the hash")
	}
}

func TestReceiptHashCoversEveryField(t *testing.T) {
	base := mandate.NewReceipt(receiptMandate(), receiptHolder, receiptDelegate, "FS Lyon", "2026-11", receiptT0)
	changes := map[string]func(*mandate.Receipt){
		"version":          func(r *mandate.Receipt) { r.Version = "2027-01" },
		"consent text":     func(r *mandate.Receipt) { r.ConsentText = "urn:x" },
		"mandate id":       func(r *mandate.Receipt) { r.MandateID = "m2" },
		"kind":             func(r *mandate.Receipt) { r.Kind = mandate.KindDelegation },
		"structure id":     func(r *mandate.Receipt) { r.StructureID = "s2" },
		"structure name":   func(r *mandate.Receipt) { r.StructureName = "FS Lille" },
		"holder id":        func(r *mandate.Receipt) { r.HolderID = "h2" },
		"holder name":      func(r *mandate.Receipt) { r.HolderName = "Awa D." },
		"mailbox":          func(r *mandate.Receipt) { r.Mailbox = "x@example.org" },
		"delegate id":      func(r *mandate.Receipt) { r.DelegateID = "st2" },
		"delegate name":    func(r *mandate.Receipt) { r.DelegateName = "Marie C." },
		"one scope less":   func(r *mandate.Receipt) { r.Scopes = r.Scopes[:1] },
		"a scope's label":  func(r *mandate.Receipt) { r.Scopes = []mandate.ReceiptScope{{Name: "mail.read"}, r.Scopes[1]} },
		"no exclusion":     func(r *mandate.Receipt) { r.Exclusions = nil },
		"purpose":          func(r *mandate.Receipt) { r.Purpose += "." },
		"purpose category": func(r *mandate.Receipt) { r.PurposeCategory = mandate.PurposeTax },
		"presence":         func(r *mandate.Receipt) { r.Presence = mandate.PresenceRelaxed },
		"not before":       func(r *mandate.Receipt) { r.NotBefore = r.NotBefore.Add(time.Second) },
		"not after":        func(r *mandate.Receipt) { r.NotAfter = r.NotAfter.Add(time.Second) },
		"approved at":      func(r *mandate.Receipt) { r.ApprovedAt = r.ApprovedAt.Add(time.Second) },
	}
	seen := map[string]string{base.Hash(): "base"}
	for name, change := range changes {
		r := base
		r.Scopes = append([]mandate.ReceiptScope(nil), base.Scopes...)
		change(&r)
		h := r.Hash()
		if other, dup := seen[h]; dup {
			t.Errorf("changing the %s gives the hash of %s", name, other)
		}
		seen[h] = name
	}
}

func TestNewReceipt(t *testing.T) {
	m := receiptMandate()
	m.Mailbox = ""
	m.Exclusions = nil
	m.Kind = mandate.KindDelegation
	r := mandate.NewReceipt(m, receiptHolder, receiptDelegate, "FS Lyon", "2026-11", receiptT0)
	if r.Mailbox != receiptHolder.Mailbox {
		t.Errorf("mailbox = %q, want the holder's when the mandate has none", r.Mailbox)
	}
	if r.Exclusions == nil || len(r.Exclusions) != 0 {
		t.Errorf("exclusions = %#v, want empty", r.Exclusions)
	}
	if r.Scopes[0].Name != "mail.read" || r.Scopes[1].LabelFR != "Envoyer des messages" {
		t.Errorf("scopes = %+v", r.Scopes)
	}
	if !r.ApprovedAt.Equal(receiptT0.Truncate(time.Second)) || r.ApprovedAt.Location() != time.UTC {
		t.Errorf("approved at %s, want %s in UTC to the second", r.ApprovedAt, receiptT0)
	}
	if r.Kind != mandate.KindDelegation || r.DelegateName != "Marie Curie" || r.HolderName != "Awa Diallo" {
		t.Errorf("receipt = %+v", r)
	}
	if !strings.Contains(string(r.Canonical()), `"exclusions":[]`) {
		t.Errorf("no exclusion is not written as an empty list: %s", r.Canonical())
	}
}

func TestConsentText(t *testing.T) {
	fr, ok := mandate.ConsentText("2026-11", "fr")
	if !ok {
		t.Fatal("2026-11 unknown")
	}
	en, ok := mandate.ConsentText("2026-11", "en")
	if !ok || en == fr {
		t.Fatalf("English text missing or the French one: %q", en)
	}
	if other, _ := mandate.ConsentText("2026-11", "de"); other != fr {
		t.Error("an unknown language does not fall back to French")
	}
	if _, ok := mandate.ConsentText("1999-01", "fr"); ok {
		t.Error("an unknown version has a text")
	}
	if _, ok := mandate.ConsentText(mandate.DefaultConsentVersion, "fr"); !ok {
		t.Error("the default version has no text")
	}
	// What the holder must be told, in plain words.
	for _, w := range []string{"seulement ce que vous avez choisi", "durée", "à tout moment", "enregistré", "mot de passe", "personnel"} {
		if !strings.Contains(fr, w) {
			t.Errorf("the French text does not say %q", w)
		}
	}
	for _, w := range []string{"only what you chose", "time", "at any time", "recorded", "password", "personal"} {
		if !strings.Contains(en, w) {
			t.Errorf("the English text does not say %q", w)
		}
	}
	for _, line := range strings.Split(fr, "\n") {
		if n := len([]rune(line)); n > 90 {
			t.Errorf("sentence of %d characters is not short: %q", n, line)
		}
	}
	// A published version never changes: a new wording is a new version.
	// These hashes pin the texts receipts of 2026-11 refer to.
	for lang, want := range map[string]string{"fr": pinnedFR, "en": pinnedEN} {
		text, _ := mandate.ConsentText("2026-11", lang)
		sum := sha256.Sum256([]byte(text))
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("the %s consent text of 2026-11 changed (sha256 %s): publish a new version instead", lang, got)
		}
	}
}

const (
	pinnedFR = "9449beb3f7359e720dbb52a5ed80891db1a4f3c9768bcc882b41268c71dd8913"
	pinnedEN = "873ccb252b3889c5404b4f810f341a728d4d8bb447c31ce452d8ec24f049c7fc"
)

func TestParseReceiptReadsBackTheCanonicalBytes(t *testing.T) {
	for name, r := range map[string]mandate.Receipt{
		"session": mandate.NewReceipt(receiptMandate(), receiptHolder, receiptDelegate, "France Services Lyon 3", "2026-11", receiptT0),
		"no window, no scope, no exclusion": mandate.NewReceipt(func() mandate.Mandate {
			m := receiptMandate()
			m.NotBefore, m.NotAfter, m.Scopes, m.Exclusions = time.Time{}, time.Time{}, nil, nil
			return m
		}(), receiptHolder, receiptDelegate, "", "2026-11", receiptT0),
	} {
		b := r.Canonical()
		got, err := mandate.ParseReceipt(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got.Canonical()) != string(b) || got.Hash() != r.Hash() {
			t.Errorf("%s: parsed receipt canonicalizes to\n%s\nwant\n%s", name, got.Canonical(), b)
		}
		if got.HolderName != r.HolderName || got.DelegateName != r.DelegateName || got.StructureName != r.StructureName ||
			!got.ApprovedAt.Equal(r.ApprovedAt) || got.ApprovedAt.Location() != time.UTC || !got.NotAfter.Equal(r.NotAfter) ||
			len(got.Scopes) != len(r.Scopes) || got.Kind != r.Kind || got.Presence != r.Presence || got.Purpose != r.Purpose {
			t.Errorf("%s: parsed %+v\nwant   %+v", name, got, r)
		}
	}
}

func TestParseReceiptRefusesAnythingButTheCanonicalForm(t *testing.T) {
	good := string(mandate.NewReceipt(receiptMandate(), receiptHolder, receiptDelegate, "FS Lyon", "2026-11", receiptT0).Canonical())
	for name, b := range map[string]string{
		"empty":             "",
		"not JSON":          "receipt",
		"a list":            "[" + good + "]",
		"white space":       strings.Replace(good, `,"kind"`, `, "kind"`, 1),
		"trailing new line": good + "\n",
		"trailing data":     good + "{}",
		"an unknown member": strings.Replace(good, `{"version"`, `{"extra":1,"version"`, 1),
		"a member missing":  strings.Replace(good, `"kind":"session",`, "", 1),
		"members reordered": strings.Replace(strings.Replace(good, `"kind":"session",`, "", 1), `"presence"`, `"kind":"session","presence"`, 1),
		"a time not in UTC": strings.Replace(good, `"approved_at":"2030-03-04T10:00:05Z"`, `"approved_at":"2030-03-04T11:00:05+01:00"`, 1),
		"a fractional time": strings.Replace(good, `"approved_at":"2030-03-04T10:00:05Z"`, `"approved_at":"2030-03-04T10:00:05.5Z"`, 1),
		"a bad time":        strings.Replace(good, `"approved_at":"2030-03-04T10:00:05Z"`, `"approved_at":"yesterday"`, 1),
		"scopes unsorted":   strings.Replace(good, `[{"name":"mail.read","label_fr":"Lire les messages"},{"name":"mail.send","label_fr":"Envoyer des messages"}]`, `[{"name":"mail.send","label_fr":"Envoyer des messages"},{"name":"mail.read","label_fr":"Lire les messages"}]`, 1),
		"HTML escaped":      strings.Replace(good, `<urgent>`, `\u003curgent\u003e`, 1),
	} {
		if b == good {
			t.Fatalf("%s: the test changed nothing", name)
		}
		if r, err := mandate.ParseReceipt([]byte(b)); err == nil {
			t.Errorf("%s: parsed as %+v", name, r)
		}
	}
}
