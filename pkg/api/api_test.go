package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPatchableFieldsMatchIronic(t *testing.T) {
	// From Ironic 21.4's answer to PATCH /uuid at 1.82.
	want := "automated_clean, bios_interface, boot_interface, chassis_uuid, conductor_group, console_interface, deploy_interface, description, driver, driver_info, extra, inspect_interface, instance_info, instance_uuid, lessee, maintenance, management_interface, name, network_data, network_interface, owner, power_interface, properties, protected, protected_reason, raid_interface, rescue_interface, resource_class, retired, retired_reason, shard, storage_interface, vendor_interface"
	if got := strings.Join(PatchableNodeFields(MaxVersion), ", "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := PatchableNodeFields(Version{1, 1}); strings.Join(got, ",") != "chassis_uuid,driver,driver_info,extra,instance_info,instance_uuid,maintenance,properties" {
		t.Errorf("1.1 patchable: %v", got)
	}
}

func TestNormalizeMAC(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"52:54:00:AA:bb:0C", "52:54:00:aa:bb:0c"},
		{"52-54-00-aa-bb-0c", "52:54:00:aa:bb:0c"},
		{"5254.00aa.bb0c", "52:54:00:aa:bb:0c"},
		{"not-a-mac", ""},
		{"52:54:00:aa:bb", ""},
		{"00:00:00:00:00:00:00:e0:00:00:00:00:00:00:00:00:00:00:00:00", ""}, // InfiniBand GUIDs are not ports here
	} {
		got, err := NormalizeMAC(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMaskSecrets(t *testing.T) {
	in := map[string]any{"ipmi_password": "p", "ipmi_username": "u", "agent_token": "t", "IPMI_PASSWORD": "P", "fake_key": "k"}
	got := MaskSecrets(in).(map[string]any)
	for k, want := range map[string]any{"ipmi_password": Masked, "ipmi_username": "u", "agent_token": Masked, "IPMI_PASSWORD": Masked, "fake_key": "k"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if in["ipmi_password"] != "p" {
		t.Error("MaskSecrets changed its input")
	}
}

func TestAppendNodeIsValidJSONForEveryVersion(t *testing.T) {
	n := sampleNode()
	n.Name = "quote\"and<tag>"
	for minor := MinVersion.Minor; minor <= MaxVersion.Minor; minor++ {
		v := &View{Version: Version{1, minor}, BaseURL: "http://x"}
		var doc map[string]any
		if err := json.Unmarshal(AppendNode(nil, n, v), &doc); err != nil {
			t.Fatalf("1.%d: %v", minor, err)
		}
		if _, ok := doc["name"]; ok != (minor >= 5) {
			t.Errorf("1.%d: name shown = %v", minor, ok)
		}
		if doc["driver_info"].(map[string]any)["ipmi_password"] != Masked {
			t.Errorf("1.%d: password not masked", minor)
		}
	}
}

func sampleNode() *Node {
	now := time.Now().UTC()
	return &Node{
		UUID: "8f412c2a-e9b1-4ad7-8882-ac887125697b", Name: "sample-node-1", CreatedAt: now, UpdatedAt: &now,
		Driver:     "fake-hardware",
		DriverInfo: map[string]any{"ipmi_address": "192.0.2.10", "ipmi_username": "admin", "ipmi_password": "secret"},
		Properties: map[string]any{"cpus": 4, "memory_mb": 8192, "local_gb": 100, "cpu_arch": "x86_64"},
		Extra:      map[string]any{"rack": "r1"}, ResourceClass: "baremetal",
		ProvisionState: "active", PowerState: PowerOn, ProvisionUpdatedAt: &now,
		InstanceInfo:       map[string]any{"image_source": "http://192.0.2.1/img.raw", "image_type": "whole-disk"},
		DriverInternalInfo: map[string]any{"is_whole_disk_image": true},
		BootInterface:      "fake", DeployInterface: "fake", PowerInterface: "fake", ManagementInterface: "fake",
	}
}

// BenchmarkAppendNodeDetail is the per-node cost of a detailed list.
func BenchmarkAppendNodeDetail(b *testing.B) {
	n := sampleNode()
	v := &View{Version: MaxVersion, BaseURL: "http://127.0.0.1:6385", Conductor: "c1"}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendNode(buf[:0], n, v)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeNode is the cost of reading one stored node.
func BenchmarkDecodeNode(b *testing.B) {
	doc, _ := json.Marshal(sampleNode())
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		var n Node
		if err := json.Unmarshal(doc, &n); err != nil {
			b.Fatal(err)
		}
	}
}
