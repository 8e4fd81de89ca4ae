// Package statemachine is the one definition of Ingot's provisioning state
// machine: Ironic's states and verbs, named exactly as Ironic names them, so
// that the REST API (which accepts or refuses a verb) and the conductor's
// workers (which finish what the API started) can never disagree.
package statemachine

import (
	"fmt"
	"slices"
)

// State is a node's provision_state.
type State string

// States, spelled as Ironic spells them on the wire.
const (
	Enroll      State = "enroll"
	Verifying   State = "verifying"
	Manageable  State = "manageable"
	Inspecting  State = "inspecting"
	InspectWait State = "inspect wait"
	InspectFail State = "inspect failed"
	Cleaning    State = "cleaning"
	CleanWait   State = "clean wait"
	CleanFail   State = "clean failed"
	Available   State = "available"
	Deploying   State = "deploying"
	DeployWait  State = "wait call-back"
	DeployFail  State = "deploy failed"
	Active      State = "active"
	Deleting    State = "deleting"
	Error       State = "error"
	Adopting    State = "adopting"
	AdoptFail   State = "adopt failed"
)

// Event moves a node from one state to another. Some events are verbs an
// operator sends through the API; the rest are raised by the conductor as an
// operation progresses.
type Event string

// Events. The first group are API verbs (the "target" of
// PUT /v1/nodes/{id}/states/provision); the second are internal.
const (
	Manage  Event = "manage"
	Provide Event = "provide"
	Inspect Event = "inspect"
	Clean   Event = "clean"
	Deploy  Event = "deploy"
	Rebuild Event = "rebuild"
	Delete  Event = "deleted"
	Abort   Event = "abort"
	Adopt   Event = "adopt"

	Done   Event = "done"   // the running operation finished
	Fail   Event = "fail"   // the running operation failed
	Wait   Event = "wait"   // the operation now waits for the agent
	Resume Event = "resume" // the agent called back; work continues
	// Timeout is Fail raised by the conductor's watchdog; separate so the
	// history shows why a node failed.
	Timeout Event = "timeout"
	// Teardown is raised by the conductor once a deleting node's instance
	// is torn down, to clean it automatically (as Ironic's "clean" from
	// deleting).
	Teardown Event = "teardown"
)

// Transition is one row of the table.
type Transition struct {
	From  State
	Event Event
	To    State
	// Target is the target_provision_state recorded on entering To; empty
	// when To is stable. For a few rows it depends on where the operation
	// was asked to end (manual clean ends in manageable, automated clean in
	// available): KeepTarget keeps the node's current target.
	Target     State
	KeepTarget bool
}

// table is the whole machine. Read it as Ironic's
// ironic/common/states.py, without rescue and servicing, which Ingot does
// not offer yet.
var table = []Transition{
	{From: Enroll, Event: Manage, To: Verifying, Target: Manageable},
	{From: Verifying, Event: Done, To: Manageable},
	{From: Verifying, Event: Fail, To: Enroll},
	{From: Verifying, Event: Timeout, To: Enroll},

	{From: Manageable, Event: Provide, To: Cleaning, Target: Available},
	{From: Manageable, Event: Clean, To: Cleaning, Target: Manageable},
	{From: Manageable, Event: Inspect, To: Inspecting, Target: Manageable},
	{From: Manageable, Event: Adopt, To: Adopting, Target: Active},
	{From: Manageable, Event: Manage, To: Verifying, Target: Manageable},

	{From: Inspecting, Event: Done, To: Manageable},
	{From: Inspecting, Event: Wait, To: InspectWait, KeepTarget: true},
	{From: Inspecting, Event: Fail, To: InspectFail},
	{From: Inspecting, Event: Timeout, To: InspectFail},
	{From: InspectWait, Event: Done, To: Manageable},
	{From: InspectWait, Event: Resume, To: Inspecting, KeepTarget: true},
	{From: InspectWait, Event: Fail, To: InspectFail},
	{From: InspectWait, Event: Timeout, To: InspectFail},
	{From: InspectWait, Event: Abort, To: InspectFail},
	{From: InspectFail, Event: Manage, To: Manageable},
	{From: InspectFail, Event: Inspect, To: Inspecting, Target: Manageable},

	{From: Cleaning, Event: Done, To: Available}, // or manageable: see Apply
	{From: Cleaning, Event: Wait, To: CleanWait, KeepTarget: true},
	{From: Cleaning, Event: Fail, To: CleanFail},
	{From: Cleaning, Event: Timeout, To: CleanFail},
	{From: CleanWait, Event: Resume, To: Cleaning, KeepTarget: true},
	{From: CleanWait, Event: Done, To: Available},
	{From: CleanWait, Event: Fail, To: CleanFail},
	{From: CleanWait, Event: Timeout, To: CleanFail},
	{From: CleanWait, Event: Abort, To: CleanFail},
	{From: CleanFail, Event: Manage, To: Manageable},

	{From: Available, Event: Deploy, To: Deploying, Target: Active},
	{From: Available, Event: Manage, To: Manageable},

	{From: Deploying, Event: Done, To: Active},
	{From: Deploying, Event: Wait, To: DeployWait, KeepTarget: true},
	{From: Deploying, Event: Fail, To: DeployFail},
	{From: Deploying, Event: Timeout, To: DeployFail},
	{From: DeployWait, Event: Resume, To: Deploying, KeepTarget: true},
	{From: DeployWait, Event: Done, To: Active},
	{From: DeployWait, Event: Fail, To: DeployFail},
	{From: DeployWait, Event: Timeout, To: DeployFail},
	{From: DeployWait, Event: Abort, To: DeployFail},
	{From: DeployWait, Event: Delete, To: Deleting, Target: Available},
	{From: DeployFail, Event: Deploy, To: Deploying, Target: Active},
	{From: DeployFail, Event: Rebuild, To: Deploying, Target: Active},
	{From: DeployFail, Event: Delete, To: Deleting, Target: Available},

	{From: Active, Event: Rebuild, To: Deploying, Target: Active},
	{From: Active, Event: Delete, To: Deleting, Target: Available},

	{From: Deleting, Event: Teardown, To: Cleaning, Target: Available},
	{From: Deleting, Event: Fail, To: Error},
	{From: Deleting, Event: Timeout, To: Error},
	{From: Error, Event: Rebuild, To: Deploying, Target: Active},
	{From: Error, Event: Delete, To: Deleting, Target: Available},

	{From: Adopting, Event: Done, To: Active},
	{From: Adopting, Event: Fail, To: AdoptFail},
	{From: Adopting, Event: Timeout, To: AdoptFail},
	{From: AdoptFail, Event: Adopt, To: Adopting, Target: Active},
	{From: AdoptFail, Event: Manage, To: Manageable},
}

// Table returns a copy of the transition table, for documentation and tests.
func Table() []Transition { return slices.Clone(table) }

// ErrNotAllowed is returned when an event cannot happen in a state.
type ErrNotAllowed struct {
	State State
	Event Event
}

func (e *ErrNotAllowed) Error() string {
	return fmt.Sprintf("event %q is not allowed in state %q", e.Event, e.State)
}

// Apply returns the state and target a node moves to when ev happens in
// state from while its target is target. Where an operation ends depends on
// the target it started with: cleaning started by "clean" ends in
// manageable, cleaning started by "provide" or by undeploy ends in
// available.
func Apply(from, target State, ev Event) (to, newTarget State, err error) {
	for _, t := range table {
		if t.From != from || t.Event != ev {
			continue
		}
		to, newTarget = t.To, t.Target
		if t.KeepTarget {
			newTarget = target
		}
		if ev == Done && (from == Cleaning || from == CleanWait) && target == Manageable {
			to = Manageable
		}
		return to, newTarget, nil
	}
	return "", "", &ErrNotAllowed{State: from, Event: ev}
}

// Can reports whether ev is allowed in state s.
func Can(s State, ev Event) bool {
	for _, t := range table {
		if t.From == s && t.Event == ev {
			return true
		}
	}
	return false
}

// verbs maps the API's provision "target" strings to events. Ironic accepts
// both the old names (active, deleted) and the newer aliases.
var verbs = map[string]Event{
	"manage":   Manage,
	"provide":  Provide,
	"inspect":  Inspect,
	"clean":    Clean,
	"active":   Deploy,
	"deploy":   Deploy,
	"rebuild":  Rebuild,
	"deleted":  Delete,
	"undeploy": Delete,
	"abort":    Abort,
	"adopt":    Adopt,
}

// Verb maps an API provision target to its event; ok is false for a string
// that is not a verb at all.
func Verb(target string) (ev Event, ok bool) {
	ev, ok = verbs[target]
	return ev, ok
}

// Stable states are where a node rests when nothing runs on it.
func (s State) Stable() bool {
	switch s {
	case Enroll, Manageable, Available, Active, InspectFail, CleanFail, DeployFail, Error, AdoptFail:
		return true
	}
	return false
}

// Waiting states wait for the node's agent to call back and so need a
// watchdog timeout.
func (s State) Waiting() bool {
	return s == InspectWait || s == CleanWait || s == DeployWait
}

// BootsAgent reports whether a node in s runs the agent: its operation
// (cleaning, inspection, deployment) is carried out by the ramdisk, which
// the boot service boots and the agent RPC service talks to.
func (s State) BootsAgent() bool {
	switch s {
	case Cleaning, CleanWait, Inspecting, InspectWait, Deploying, DeployWait:
		return true
	}
	return false
}

// Busy states have a conductor operation in progress.
func (s State) Busy() bool { return !s.Stable() && !s.Waiting() }

// Deletable reports whether a node in s may be deleted without maintenance
// mode, as Ironic allows.
func (s State) Deletable() bool {
	return s == Manageable || s == Enroll || s == AdoptFail || s == Available
}

// DeletableStates lists Deletable's states in the order Ironic's error
// message names them.
func DeletableStates() []State { return []State{Manageable, Enroll, AdoptFail, Available} }

// All lists every state, for metrics that report nodes by state.
func All() []State {
	return []State{Enroll, Verifying, Manageable, Inspecting, InspectWait, InspectFail,
		Cleaning, CleanWait, CleanFail, Available, Deploying, DeployWait, DeployFail,
		Active, Deleting, Error, Adopting, AdoptFail}
}
