package boot

import (
	"testing"

	"github.com/ingot/ingot/pkg/api"
)

func TestDecide(t *testing.T) {
	for _, tt := range []struct {
		state       string
		maintenance bool
		want        Action
	}{
		{"enroll", false, Ignore},
		{"manageable", false, Ignore},
		{"available", false, Ignore},
		{"cleaning", false, Agent},
		{"clean wait", false, Agent},
		{"inspecting", false, Agent},
		{"inspect wait", false, Agent},
		{"deploying", false, Agent},
		{"wait call-back", false, Agent},
		{"deploy failed", false, Ignore},
		{"active", false, LocalDisk},
		{"deploying", true, Ignore},
	} {
		got := decide(&api.Node{UUID: "u", ProvisionState: tt.state, Maintenance: tt.maintenance})
		if got.Action != tt.want {
			t.Errorf("%s (maintenance %v): %v, want %v", tt.state, tt.maintenance, got.Action, tt.want)
		}
		if got.Action != Ignore && got.Node != "u" {
			t.Errorf("%s: node %q", tt.state, got.Node)
		}
	}
}
