package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/mandated/mandated/mandate"
)

// mandateActions maps each step of the mandate service to its action.
var mandateActions = map[mandate.Step]Action{
	mandate.StepRequested: ActionMandateRequested,
	mandate.StepApproved:  ActionMandateApproved,
	mandate.StepRefused:   ActionMandateRefused,
	mandate.StepLapsed:    ActionMandateUnanswered,
	mandate.StepActivated: ActionMandateActivated,
	mandate.StepEnded:     ActionMandateEnded,
	mandate.StepRefusedBy: ActionMandateRequestDenied,
	mandate.StepPolicy:    ActionMandatePolicyChanged,

	mandate.StepPresenceStarted: ActionMandatePresence,
	mandate.StepPresenceEnded:   ActionMandatePresenceEnded,
}

// MandateEvent is the audit event of one mandate step.
//
// The target names what the step is about, for the holder's history and
// auditors: the scopes asked, the receipt hash of an approval (so a printed
// receipt's QR code can be confirmed against the log), the end reason.
func MandateEvent(r mandate.Record) (Event, error) {
	action, ok := mandateActions[r.Step]
	if !ok {
		return Event{}, fmt.Errorf("%w: unknown mandate step %q", ErrInvalid, trunc(string(r.Step)))
	}
	kind := ActorKind(r.Actor.Kind)
	switch kind {
	case ActorStaff, ActorHolder, ActorSystem:
	default:
		return Event{}, fmt.Errorf("%w: unknown mandate actor kind %q", ErrInvalid, trunc(r.Actor.Kind))
	}
	m := r.Mandate
	e := Event{
		Actor:     Actor{Kind: kind, ID: r.Actor.ID, Name: r.Actor.Name},
		Holder:    m.HolderID,
		Structure: m.StructureID,
		Action:    action,
		MandateID: m.ID,
		ClientID:  m.ClientID,
		Outcome:   OutcomeSuccess,
		Reason:    r.Reason,
		RequestID: r.RequestID,
	}
	if kind == ActorSystem {
		e.Actor.ID, e.Actor.Name = "", ""
	}
	if r.Denied {
		e.Outcome = OutcomeDenied
	}
	switch r.Step {
	case mandate.StepApproved:
		if m.ConsentHash != "" {
			e.Target = "receipt:" + m.ConsentHash
		}
	case mandate.StepEnded:
		if e.Reason == "" {
			e.Reason = "ended by " + string(m.EndReason)
		}
	}
	if e.Target == "" && len(m.Scopes) > 0 {
		e.Target = "scope:" + strings.Join(m.Scopes, " ")
	}
	return e, e.Validate()
}

// MandateRecorder adapts a Log to mandate.Recorder.
func MandateRecorder(l *Log) mandate.Recorder { return mandateRecorder{l} }

type mandateRecorder struct{ log *Log }

func (m mandateRecorder) RecordMandate(ctx context.Context, r mandate.Record) error {
	e, err := MandateEvent(r)
	if err != nil {
		return err
	}
	if _, err := m.log.Record(ctx, e); err != nil {
		return fmt.Errorf("record %s: %w", e.Action, err)
	}
	return nil
}
