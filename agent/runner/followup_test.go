package runner

import (
	"testing"
	"time"

	"github.com/ingot/ingot/proto/agentpb"
)

func TestFollowUp(t *testing.T) {
	r := &Runner{}
	normal := 10 * time.Second
	done := &agentpb.CommandStatus{CommandId: "a", State: agentpb.CommandStatus_SUCCEEDED}
	running := &agentpb.CommandStatus{CommandId: "b", State: agentpb.CommandStatus_RUNNING}
	var last string
	var n int
	for i := range maxFollowUps {
		if got := r.followUp(done, &last, &n, normal); got != followUpDelay {
			t.Fatalf("call %d after a finished command waits %s, want %s", i, got, followUpDelay)
		}
	}
	if got := r.followUp(done, &last, &n, normal); got != normal {
		t.Errorf("after %d quick calls the wait is %s, want the normal %s", maxFollowUps, got, normal)
	}
	if got := r.followUp(running, &last, &n, normal); got != normal {
		t.Errorf("a running command's wait is %s, want %s", got, normal)
	}
	if got := r.followUp(nil, &last, &n, normal); got != normal {
		t.Errorf("no status: wait %s, want %s", got, normal)
	}
	next := &agentpb.CommandStatus{CommandId: "c", State: agentpb.CommandStatus_FAILED}
	if got := r.followUp(next, &last, &n, normal); got != followUpDelay {
		t.Errorf("a newly finished command waits %s, want %s", got, followUpDelay)
	}
	if got := r.followUp(next, &last, &n, 100*time.Millisecond); got != 100*time.Millisecond {
		t.Errorf("a normal wait shorter than the follow-up delay must win, got %s", got)
	}
}
