package conductor

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// ApplyEvent moves n through the state machine: provision_state, its
// target, provision_updated_at and last_error change together, and the
// returned history entry describes the move. Both the API (for verbs) and
// the workers (for results) change state only through here.
func ApplyEvent(n *api.Node, ev sm.Event, lastError, host string, now time.Time) (*store.Event, error) {
	from := sm.State(n.ProvisionState)
	to, target, err := sm.Apply(from, sm.State(n.TargetProvisionState), ev)
	if err != nil {
		return nil, err
	}
	n.ProvisionState = string(to)
	n.TargetProvisionState = string(target)
	n.ProvisionUpdatedAt = &now
	switch ev {
	case sm.Fail, sm.Timeout, sm.Abort:
		n.LastError = lastError
	case sm.Done, sm.Wait, sm.Resume, sm.Teardown:
		// An operation that goes on keeps the last error of nothing.
		n.LastError = ""
	default:
		// A new operation asked for by the operator starts with a clean
		// slate, as in Ironic.
		n.LastError = ""
	}
	if ev == sm.Teardown {
		// The instance is gone: forget it, including its config drive,
		// which may hold secrets, as Ironic's tear down does.
		n.InstanceInfo, n.InstanceUUID = nil, ""
	}
	switch {
	case to == sm.Inspecting && from != sm.InspectWait:
		n.InspectionStartedAt, n.InspectionFinishedAt = &now, nil
	case from == sm.Inspecting || from == sm.InspectWait:
		if to == sm.Manageable {
			n.InspectionFinishedAt = &now
		}
	}
	e := &store.Event{
		UUID:      uuid.NewString(),
		CreatedAt: now,
		Severity:  "INFO",
		Event:     fmt.Sprintf("%s: %s -> %s", ev, from, to),
		EventType: "provisioning",
		Conductor: host,
	}
	if n.LastError != "" {
		e.Severity = "ERROR"
		e.Event += ": " + n.LastError
	}
	return e, nil
}
