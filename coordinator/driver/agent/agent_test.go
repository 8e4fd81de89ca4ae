package agent

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/imagecache"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

type images struct {
	got imagecache.Source
	e   imagecache.Entry
	err error
}

func (i *images) Get(_ context.Context, src imagecache.Source) (imagecache.Entry, error) {
	i.got = src
	return i.e, i.err
}

func names(cmds []Command) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, c.Name)
	}
	return out
}

func TestSteps(t *testing.T) {
	deployed := map[string]any{imageKey: map[string]any{"url": "http://c/images/cache/x.raw", "format": "zstd", "sha256": "ab", "sha512": "cd", "size": float64(1 << 30)}}
	for _, tc := range []struct {
		name    string
		node    api.Node
		want    []string
		wantErr string
	}{
		{"deploy", api.Node{ProvisionState: string(sm.DeployWait), DriverInternalInfo: deployed}, []string{"write_image"}, ""},
		{"deploy with config drive", api.Node{ProvisionState: string(sm.DeployWait), DriverInternalInfo: deployed,
			InstanceInfo: map[string]any{"configdrive": "http://example.com/cd.iso"}}, []string{"write_image", "install_config_drive"}, ""},
		{"deploy without recorded image", api.Node{ProvisionState: string(sm.DeployWait)}, nil, "deploy again"},
		{"automated clean", api.Node{ProvisionState: string(sm.CleanWait), TargetProvisionState: string(sm.Available)}, []string{"erase_devices_metadata"}, ""},
		{"manual clean", api.Node{ProvisionState: string(sm.CleanWait), TargetProvisionState: string(sm.Manageable),
			DriverInternalInfo: map[string]any{"clean_steps": []any{
				map[string]any{"interface": "deploy", "step": "erase_devices"},
				map[string]any{"interface": "deploy", "step": "erase_devices_metadata"},
			}}}, []string{"erase_devices", "erase_devices_metadata"}, ""},
		{"manual clean, unknown step", api.Node{ProvisionState: string(sm.CleanWait), TargetProvisionState: string(sm.Manageable),
			DriverInternalInfo: map[string]any{"clean_steps": []any{map[string]any{"step": "update_firmware"}}}}, nil, `"update_firmware" is not supported`},
		{"not waiting", api.Node{ProvisionState: string(sm.Active)}, nil, "no agent steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&Deploy{}).Steps(&tc.node)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), tc.want) {
				t.Fatalf("steps = %v, want %v", names(got), tc.want)
			}
			if w := got[0].GetWriteImage(); w != nil {
				if w.GetUrl() != "http://c/images/cache/x.raw" || w.GetFormat() != "zstd" || w.GetSizeBytes() != 1<<30 ||
					w.GetChecksumAlgorithm() != "sha256" || w.GetChecksum() != "ab" || w.GetChecksums()["sha512"] != "cd" {
					t.Errorf("write image = %v", w)
				}
			}
		})
	}
}

func TestDeployResolvesTheImage(t *testing.T) {
	img := &images{e: imagecache.Entry{Name: "abc.raw", Format: "raw", Size: 100, RawSize: 100, SHA256: "ff", SHA512: "ee"}}
	d := &Deploy{Images: img, ImageURL: "http://192.0.2.1:8080/images/cache/"}
	n := &api.Node{UUID: "u", InstanceInfo: map[string]any{"image_source": "http://img/x.qcow2", "image_os_hash_algo": "sha512", "image_os_hash_value": "00"}}
	res, err := d.Deploy(context.Background(), n)
	if err != nil || res != driver.Wait {
		t.Fatalf("Deploy = %v, %v; want Wait", res, err)
	}
	if img.got.URL != "http://img/x.qcow2" || img.got.HashAlgo != "sha512" {
		t.Errorf("cache asked for %+v", img.got)
	}
	rec := n.DriverInternalInfo[imageKey].(map[string]any)
	if rec["url"] != "http://192.0.2.1:8080/images/cache/abc.raw" || rec["sha256"] != "ff" || rec["sha512"] != "ee" {
		t.Errorf("recorded %v", rec)
	}

	img.err = errors.New("checksum mismatch")
	if _, err := d.Deploy(context.Background(), n); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("a cache failure gave %v", err)
	}
	if _, err := d.Deploy(context.Background(), &api.Node{UUID: "u"}); err == nil || !strings.Contains(err.Error(), "image_source") {
		t.Errorf("a node with no image gave %v", err)
	}
	img.err = nil
	bad := &api.Node{UUID: "u", InstanceInfo: map[string]any{"image_source": "http://img/x", "image_checksum": "00", "configdrive": 42}}
	if _, err := d.Deploy(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "config drive") {
		t.Errorf("a bad config drive gave %v", err)
	}
}

func TestRootDeviceHints(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      any
		want    map[string]string
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"mixed", map[string]any{"size": float64(40), "rotational": false, "serial": "s== ABC"}, map[string]string{"size": "40", "rotational": "false", "serial": "s== ABC"}, false},
		{"not an object", "vda", nil, true},
		{"nested", map[string]any{"name": []any{"vda"}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &api.Node{Properties: map[string]any{}}
			if tc.in != nil {
				n.Properties["root_device"] = tc.in
			}
			got, err := RootDeviceHints(n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got.GetHints(), tc.want) {
				t.Errorf("hints = %v, want %v", got.GetHints(), tc.want)
			}
		})
	}
}

func TestPartitionImage(t *testing.T) {
	img := &images{e: imagecache.Entry{Name: "p.raw", Format: "raw", Size: 10, RawSize: 10, SHA256: "ff"}}
	d := &Deploy{Images: img, ImageURL: "http://c/images/cache"}
	base := func() *api.Node {
		return &api.Node{UUID: "u", Properties: map[string]any{"capabilities": "boot_mode:uefi"}, InstanceInfo: map[string]any{
			"image_source": "http://img/root.img", "image_checksum": "00", "image_type": "partition", "kernel": "k", "ramdisk": "r",
		}}
	}
	n := base()
	n.InstanceInfo["root_gb"] = float64(10)
	if _, err := d.Deploy(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	n.ProvisionState = string(sm.DeployWait)
	steps, err := d.Steps(n)
	if err != nil {
		t.Fatal(err)
	}
	l := steps[0].GetWriteImage().GetPartitionLayout()
	if l.GetRootMib() != 10*1024 || !l.GetEfiSystemPartition() {
		t.Errorf("layout %v, want a 10 GiB root after an EFI system partition", l)
	}

	for _, root := range []any{nil, "0", "ten", float64(-1)} {
		n := base()
		if root != nil {
			n.InstanceInfo["root_gb"] = root
		}
		if _, err := d.Deploy(context.Background(), n); err == nil || !strings.Contains(err.Error(), "root_gb") {
			t.Errorf("root_gb %v: err %v, want one naming root_gb", root, err)
		}
	}

	whole := base()
	delete(whole.InstanceInfo, "image_type")
	if _, err := d.Deploy(context.Background(), whole); err != nil {
		t.Fatal(err)
	}
	whole.ProvisionState = string(sm.DeployWait)
	if steps, _ := d.Steps(whole); steps[0].GetWriteImage().GetPartitionLayout() != nil {
		t.Error("a whole-disk image got a partition layout")
	}
}
