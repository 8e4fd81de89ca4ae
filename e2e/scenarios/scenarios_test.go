// Package scenarios provisions QEMU machines end to end, as an operator
// would: enrolled through the REST API with the ipmi driver, powered by
// their virtual BMCs, network-booted from the coordinator into the agent,
// deployed, and booted from their disks into the test image, which proves
// it was written whole and found its config drive by printing the node's
// UUID. They need root, QEMU and the tools of scripts/setup.sh; make test
// runs them.
package scenarios

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot/ingot/e2e/lab"
	"github.com/ingot/ingot/e2e/testimage"
)

const (
	bootTimeout = 4 * time.Minute // one network boot and agent operation under TCG
)

var (
	imageOnce sync.Once
	images    struct {
		raw, zst, qcow2 testimage.Image
		err             error
	}
)

// testImages builds the test image and its compressed forms once.
func testImages(t *testing.T) (raw, zst, qcow2 testimage.Image) {
	t.Helper()
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ingot-images-")
		if err != nil {
			images.err = err
			return
		}
		ctx := context.Background()
		if images.raw, images.err = testimage.Build(ctx, testimage.Options{Dir: dir, SizeMiB: 64}); images.err != nil {
			return
		}
		if images.zst, images.err = testimage.Zstd(ctx, images.raw); images.err != nil {
			return
		}
		images.qcow2, images.err = testimage.QCOW2(ctx, images.raw)
	})
	if images.err != nil {
		t.Fatal(images.err)
	}
	return images.raw, images.zst, images.qcow2
}

// deploy deploys img on n with a config drive and waits for the machine to
// boot it from its disk: the test image prints the UUID it reads from the
// config drive.
func deploy(t *testing.T, l *lab.Lab, n *lab.Node, url, sha256 string) {
	t.Helper()
	finishDeploy(t, l, n, startDeploy(t, l, n, url, sha256))
}

// started is a deploy under way.
type started struct {
	url    string
	offset int
	at     time.Time
}

func startDeploy(t *testing.T, l *lab.Lab, n *lab.Node, url, sha256 string) started {
	t.Helper()
	l.API.Must(200, "PATCH", "/v1/nodes/"+n.UUID, []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": url},
		{"op": "add", "path": "/instance_info/image_checksum", "value": sha256},
	})
	s := started{url: url, offset: n.ConsoleSize(), at: time.Now()}
	l.Provision(n.UUID, "active", map[string]any{"configdrive": map[string]any{"meta_data": map[string]any{"hostname": n.Name}}})
	return s
}

func finishDeploy(t *testing.T, l *lab.Lab, n *lab.Node, s started) {
	t.Helper()
	l.WaitState(n.UUID, "active", bootTimeout)
	active := time.Since(s.at)
	line := n.WaitConsole(t, s.offset, testimage.Marker, 2*time.Minute)
	boot, ok := testimage.ParseMarker([]byte(line))
	if !ok || boot.UUID != n.UUID {
		t.Fatalf("%s booted its disk but printed %q; want the node UUID %s from its config drive", n.Name, line, n.UUID)
	}
	t.Logf("%s: %s deployed: active after %s, booted from disk after %s", n.Name, s.url[strings.LastIndex(s.url, "/")+1:],
		active.Round(time.Millisecond), time.Since(s.at).Round(time.Millisecond))
}

// undeploy tears the instance down and waits for cleaning to finish; the
// disk's partition table must be gone.
func undeploy(t *testing.T, l *lab.Lab, n *lab.Node) {
	t.Helper()
	l.Provision(n.UUID, "deleted", nil)
	l.WaitState(n.UUID, "available", bootTimeout)
	if !lab.Zero(n.DiskHead(t, 512)) {
		t.Errorf("%s: the partition table survived cleaning", n.Name)
	}
}

// TestLifecycle is scenarios 1 to 3 on one machine: enrol, manage,
// inspect, provide (automated cleaning), deploy a raw image with a config
// drive and boot it, undeploy, then the same with a zstd-compressed and a
// qcow2 image.
func TestLifecycle(t *testing.T) {
	l := lab.Start(t, lab.Options{})
	raw, zst, qcow2 := testImages(t)
	n := l.Nodes[0]
	l.Enroll(n, nil)

	l.Provision(n.UUID, "manage", nil)
	l.WaitState(n.UUID, "manageable", time.Minute)
	l.Provision(n.UUID, "inspect", nil)
	node := l.WaitState(n.UUID, "manageable", bootTimeout)
	props, _ := node["properties"].(map[string]any)
	for _, k := range []string{"cpus", "memory_mb", "local_gb", "cpu_arch"} {
		if _, ok := props[k]; !ok {
			t.Errorf("inspection did not set properties.%s: %v", k, props)
		}
	}
	if props["cpu_arch"] != "x86_64" || props["local_gb"] != float64(3) {
		t.Errorf("inspected cpu_arch %v, local_gb %v; want x86_64 and 3 (a 4 GiB disk less 1)", props["cpu_arch"], props["local_gb"])
	}
	inv := l.API.Must(200, "GET", "/v1/nodes/"+n.UUID+"/inventory", nil).JSON(t)["inventory"].(map[string]any)
	if ifs, _ := json.Marshal(inv["interfaces"]); !strings.Contains(string(ifs), n.MAC) {
		t.Errorf("inventory interfaces %s lack the machine's MAC %s", ifs, n.MAC)
	}

	l.Provision(n.UUID, "provide", nil)
	l.WaitState(n.UUID, "available", bootTimeout)

	for _, img := range []testimage.Image{raw, zst, qcow2} {
		deploy(t, l, n, l.ServeImage(img.Path), img.SHA256)
		undeploy(t, l, n)
	}
}
