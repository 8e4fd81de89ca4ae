package runner

import (
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/ingot/ingot/proto/agentpb"
)

// tracker holds the state of the agent's current (or last) command, shared
// between the goroutine running it and the heartbeat loop reporting it.
// It is what keeps commands one at a time: a command starts only when
// none is running.
type tracker struct {
	mu      sync.Mutex
	status  *agentpb.CommandStatus // nil before the first command
	running bool
	// afterReport runs once a heartbeat has delivered the finished status
	// of command afterID: a reboot must not happen before the coordinator
	// knows it was asked for and done.
	afterReport func()
	afterID     string
	// wake makes the heartbeat loop report a finished command at once
	// rather than at the next interval.
	wake chan struct{}
}

func newTracker() *tracker { return &tracker{wake: make(chan struct{}, 1)} }

// begin claims the runner for command id. It refuses while another command
// runs, and for the command last run: the coordinator repeats a command
// until it sees a status with its id, so a repeat is not a new request.
// A refused command is not lost: the coordinator sends it again on the
// next heartbeat whose status names another command.
func (t *tracker) begin(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running || (t.status != nil && t.status.GetCommandId() == id) {
		return false
	}
	t.running = true
	t.status = &agentpb.CommandStatus{CommandId: id, State: agentpb.CommandStatus_RUNNING}
	t.afterReport, t.afterID = nil, ""
	return true
}

// progress records p for the running command.
func (t *tracker) progress(p *agentpb.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		t.status.Progress = p
	}
}

// finish records the command's outcome: SUCCEEDED unless err, with
// result (which may set the status's result) applied. after, if not nil,
// runs once a heartbeat has delivered this status.
func (t *tracker) finish(err error, result func(*agentpb.CommandStatus), after func()) {
	t.mu.Lock()
	st := t.status
	t.running = false
	st.State = agentpb.CommandStatus_SUCCEEDED
	if err != nil {
		st.State, st.Error = agentpb.CommandStatus_FAILED, err.Error()
	} else if result != nil {
		result(st)
	}
	t.afterReport, t.afterID = after, st.GetCommandId()
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// snapshot returns a copy of the status to report (nil if none yet).
func (t *tracker) snapshot() *agentpb.CommandStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status == nil {
		return nil
	}
	return proto.Clone(t.status).(*agentpb.CommandStatus)
}

// delivered is called after a heartbeat carrying sent succeeded; it
// returns the action waiting for that status, once.
func (t *tracker) delivered(sent *agentpb.CommandStatus) func() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sent == nil || sent.GetState() == agentpb.CommandStatus_RUNNING || t.afterReport == nil || t.afterID != sent.GetCommandId() {
		return nil
	}
	f := t.afterReport
	t.afterReport, t.afterID = nil, ""
	return f
}

// reset forgets everything: a new session starts with no history, so the
// last session's command is neither reported nor mistaken for a repeat.
func (t *tracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status, t.running, t.afterReport, t.afterID = nil, false, nil, ""
}
