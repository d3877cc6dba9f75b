package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// LeafPrefix starts every version-1 leaf encoding (see docs/audit-format.md).
const LeafPrefix = "mandated-audit-v1\n"

// Leaf field names (keys of the JSON object after LeafPrefix). A personal
// field appears as name+"_c": the hex commitment to its value.
const (
	FieldSeq       = "seq"
	FieldTime      = "time"
	FieldAction    = "action"
	FieldOutcome   = "outcome"
	FieldActorKind = "actor_kind"
	FieldActorID   = "actor_id"
	FieldActorName = "actor_name"
	FieldHolder    = "holder"
	FieldStructure = "structure"
	FieldTarget    = "target"
	FieldMandateID = "mandate_id"
	FieldClientID  = "client_id"
	FieldReason    = "reason"
	FieldRequestID = "request_id"
)

// CommitSuffix marks a committed personal field in a leaf.
const CommitSuffix = "_c"

// personalField is one personal value of an event and the person whose key
// commits to it.
type personalField struct {
	name, value, person string
}

// personalFields lists e's personal values with the person each belongs
// to: the actor's id and name (when the actor is a person), the holder, and
// the target (the holder's when there is one, else a person actor's).
func personalFields(e Event) []personalField {
	var out []personalField
	add := func(name, value, person string) {
		if value != "" && person != "" {
			out = append(out, personalField{name, value, person})
		}
	}
	actorPerson := ""
	if e.Actor.Kind.Person() {
		actorPerson = e.Actor.ID
	}
	add(FieldActorID, e.Actor.ID, actorPerson)
	add(FieldActorName, e.Actor.Name, actorPerson)
	add(FieldHolder, e.Holder, e.Holder)
	targetOwner := e.Holder
	if targetOwner == "" {
		targetOwner = actorPerson
	}
	add(FieldTarget, e.Target, targetOwner)
	return out
}

// People returns the ids of the people e names (whose keys Record needs).
func (e Event) People() []string {
	var out []string
	for _, f := range personalFields(e) {
		if !contains(out, f.person) {
			out = append(out, f.person)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Opening returns the per-event, per-field key that commits to a personal
// value: HMAC-SHA256(personKey, "mandated-audit-v1 opening\n" || seq || "\n" || field).
// Revealing it (as exports do) opens one field of one event and nothing else.
func Opening(personKey []byte, seq int64, field string) []byte {
	m := hmac.New(sha256.New, personKey)
	m.Write([]byte("mandated-audit-v1 opening\n" + strconv.FormatInt(seq, 10) + "\n" + field))
	return m.Sum(nil)
}

// Commit returns the commitment to value under opening: HMAC-SHA256(opening, value).
func Commit(opening []byte, value string) []byte {
	m := hmac.New(sha256.New, opening)
	m.Write([]byte(value))
	return m.Sum(nil)
}

// Readable is one person's readable fields of one event, to be sealed under
// that person's key and stored apart from the tree.
type Readable struct {
	Person string
	Fields map[string]string
}

// EncodeLeaf returns the canonical version-1 encoding of e (Seq and Time
// set), with each personal field replaced by its commitment under the key
// keyOf returns for its person, and the readable values grouped by person.
// Empty fields are omitted. The JSON has sorted keys and string values only.
func EncodeLeaf(e Event, keyOf func(person string) []byte) ([]byte, []Readable, error) {
	m := map[string]string{
		FieldSeq:       strconv.FormatInt(e.Seq, 10),
		FieldTime:      e.Time.UTC().Format(time.RFC3339Nano),
		FieldAction:    string(e.Action),
		FieldOutcome:   string(e.Outcome),
		FieldActorKind: string(e.Actor.Kind),
	}
	plain := func(name, v string) {
		if v != "" {
			m[name] = v
		}
	}
	plain(FieldStructure, e.Structure)
	plain(FieldMandateID, e.MandateID)
	plain(FieldClientID, e.ClientID)
	plain(FieldReason, e.Reason)
	plain(FieldRequestID, e.RequestID)
	personal := personalFields(e)
	committed := map[string]bool{}
	var readable []Readable
	for _, f := range personal {
		key := keyOf(f.person)
		if len(key) == 0 {
			return nil, nil, fmt.Errorf("encode event %d: no key for a person", e.Seq)
		}
		m[f.name+CommitSuffix] = hex.EncodeToString(Commit(Opening(key, e.Seq, f.name), f.value))
		committed[f.name] = true
		i := len(readable) - 1
		for ; i >= 0 && readable[i].Person != f.person; i-- {
		}
		if i < 0 {
			readable = append(readable, Readable{Person: f.person, Fields: map[string]string{}})
			i = len(readable) - 1
		}
		readable[i].Fields[f.name] = f.value
	}
	// Non-person actors and targets without an owner stay in clear.
	if !committed[FieldActorID] {
		plain(FieldActorID, e.Actor.ID)
	}
	if !committed[FieldActorName] {
		plain(FieldActorName, e.Actor.Name)
	}
	if !committed[FieldTarget] {
		plain(FieldTarget, e.Target)
	}
	var buf bytes.Buffer
	buf.WriteString(LeafPrefix)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil { // map keys are sorted
		return nil, nil, fmt.Errorf("encode event %d: %w", e.Seq, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return b, readable, nil
}

// ParseLeaf decodes a version-1 leaf into its fields.
func ParseLeaf(leaf []byte) (map[string]string, error) {
	body, ok := bytes.CutPrefix(leaf, []byte(LeafPrefix))
	if !ok {
		return nil, fmt.Errorf("leaf does not start with %q", LeafPrefix)
	}
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("leaf body: %w", err)
	}
	if _, err := strconv.ParseInt(m[FieldSeq], 10, 64); err != nil {
		return nil, fmt.Errorf("leaf seq %q: %w", m[FieldSeq], err)
	}
	return m, nil
}

// LeafSeq returns the sequence number a leaf encodes.
func LeafSeq(fields map[string]string) int64 {
	n, _ := strconv.ParseInt(fields[FieldSeq], 10, 64)
	return n
}
