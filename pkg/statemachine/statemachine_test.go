package statemachine

import (
	"errors"
	"testing"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name       string
		from       State
		target     State
		ev         Event
		to         State
		wantTarget State
		wantErr    bool
	}{
		{"manage enroll", Enroll, "", Manage, Verifying, Manageable, false},
		{"verify ok", Verifying, Manageable, Done, Manageable, "", false},
		{"verify fails back to enroll", Verifying, Manageable, Fail, Enroll, "", false},
		{"provide", Manageable, "", Provide, Cleaning, Available, false},
		{"automated clean ends available", Cleaning, Available, Done, Available, "", false},
		{"manual clean ends manageable", Cleaning, Manageable, Done, Manageable, "", false},
		{"manual clean via wait ends manageable", CleanWait, Manageable, Done, Manageable, "", false},
		{"clean wait keeps target", Cleaning, Manageable, Wait, CleanWait, Manageable, false},
		{"deploy", Available, "", Deploy, Deploying, Active, false},
		{"deploy waits", Deploying, Active, Wait, DeployWait, Active, false},
		{"agent resumes", DeployWait, Active, Resume, Deploying, Active, false},
		{"deploy done", Deploying, Active, Done, Active, "", false},
		{"deploy timeout", DeployWait, Active, Timeout, DeployFail, "", false},
		{"redeploy failed", DeployFail, "", Deploy, Deploying, Active, false},
		{"undeploy", Active, "", Delete, Deleting, Available, false},
		{"teardown cleans", Deleting, Available, Teardown, Cleaning, Available, false},
		{"abort deploy", DeployWait, Active, Abort, DeployFail, "", false},
		{"adopt", Manageable, "", Adopt, Adopting, Active, false},
		{"no deploy from enroll", Enroll, "", Deploy, "", "", true},
		{"no provide from available", Available, "", Provide, "", "", true},
		{"no delete from available", Available, "", Delete, "", "", true},
		{"no abort from active", Active, "", Abort, "", "", true},
		{"no done in stable state", Active, "", Done, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, target, err := Apply(tt.from, tt.target, tt.ev)
			if tt.wantErr {
				var na *ErrNotAllowed
				if !errors.As(err, &na) {
					t.Fatalf("Apply(%q, %q) = %q, %v; want ErrNotAllowed", tt.from, tt.ev, to, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply(%q, %q): %v", tt.from, tt.ev, err)
			}
			if to != tt.to || target != tt.wantTarget {
				t.Errorf("Apply(%q, %q, %q) = (%q, %q), want (%q, %q)", tt.from, tt.target, tt.ev, to, target, tt.to, tt.wantTarget)
			}
		})
	}
}

// Every state an operation can be in must have a way out on failure and on
// timeout, or a node could be stuck there forever.
func TestEveryBusyStateCanFail(t *testing.T) {
	for _, s := range All() {
		if s.Stable() {
			continue
		}
		if !Can(s, Fail) || !Can(s, Timeout) {
			t.Errorf("state %q has no fail or timeout transition", s)
		}
	}
}

// Every state named in the table must be one All knows, so metrics and
// filters cover it.
func TestTableStatesKnown(t *testing.T) {
	known := map[State]bool{}
	for _, s := range All() {
		known[s] = true
	}
	for _, tr := range Table() {
		for _, s := range []State{tr.From, tr.To} {
			if !known[s] {
				t.Errorf("transition %+v names unknown state %q", tr, s)
			}
		}
		if tr.Target != "" && !tr.Target.Stable() {
			t.Errorf("transition %+v targets unstable state", tr)
		}
	}
}

func TestVerb(t *testing.T) {
	for _, tt := range []struct {
		in string
		ev Event
		ok bool
	}{
		{"active", Deploy, true}, {"deploy", Deploy, true}, {"deleted", Delete, true},
		{"undeploy", Delete, true}, {"manage", Manage, true}, {"manage2", "", false},
		{"done", "", false}, {"fail", "", false},
	} {
		ev, ok := Verb(tt.in)
		if ev != tt.ev || ok != tt.ok {
			t.Errorf("Verb(%q) = %q, %v; want %q, %v", tt.in, ev, ok, tt.ev, tt.ok)
		}
	}
}
