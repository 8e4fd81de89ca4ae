// Package deployflow runs the whole agent-driven lifecycle in one process:
// the REST API, the conductor, the agent service over TLS and a real
// agent runner whose disk is a file, all on a real redis-server. Only the
// hardware (power, boot device) is fake; what the QEMU end-to-end tests
// prove slowly, this proves in seconds, on every change.
package deployflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot/ingot/agent/runner"
	"github.com/ingot/ingot/coordinator/agentrpc"
	"github.com/ingot/ingot/coordinator/agentrpc/agentrpctest"
	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/agent"
	"github.com/ingot/ingot/coordinator/driver/fake"
	"github.com/ingot/ingot/coordinator/imagecache"
	"github.com/ingot/ingot/pkg/testlog"
)

const (
	mac     = "52:54:00:aa:bb:01"
	diskGiB = 8
)

// testImage is a 4 MiB whole-disk image: an MBR with one partition at
// 1 MiB, and random bytes.
func testImage(t *testing.T) []byte {
	img := make([]byte, 4<<20)
	rand.Read(img)
	clear(img[440:512])
	e := img[446:462]
	e[0], e[4] = 0x80, 0x0c
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 4096)
	img[510], img[511] = 0x55, 0xaa
	return img
}

type flow struct {
	env  *coordinatortest.Env
	api  *coordinatortest.Client
	disk string // the file standing in for the agent's /dev/vda
	logs *testlog.Buffer
}

func start(t *testing.T) *flow {
	t.Helper()
	cacheDir := t.TempDir()
	cache, err := imagecache.New(imagecache.Config{Dir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	// What the coordinator's boot HTTP server does for /images/cache/.
	cacheSrv := httptest.NewServer(http.StripPrefix("/images/cache/", http.FileServer(http.Dir(cacheDir))))
	t.Cleanup(cacheSrv.Close)

	hw := fake.New()
	hw.Name = "agent-hardware"
	agent.Add(hw, &agent.Deploy{Images: cache, ImageURL: cacheSrv.URL + "/images/cache"}, &agent.Inspect{})
	env := coordinatortest.Start(t, coordinatortest.Options{
		Drivers:   []*driver.Hardware{fake.New(), hw},
		Conductor: conductor.Config{Workers: 4},
	})
	rpc := agentrpctest.StartWith(t, agentrpc.Config{HeartbeatInterval: time.Second, Dispatcher: env.Conductor}, env.Store)

	f := &flow{env: env, api: coordinatortest.NewClient(t, env), logs: &testlog.Buffer{}}
	root, devRoot := fixture(t), t.TempDir()
	f.disk = filepath.Join(devRoot, "dev", "vda")
	os.MkdirAll(filepath.Dir(f.disk), 0o755)
	if err := os.WriteFile(f.disk, []byte("old partition table"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.disk, diskGiB<<30); err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(runner.Config{
		Coordinator: rpc.Addr, CAFingerprint: rpc.CA.Fingerprint(), Version: "test",
		Root: root, DevRoot: devRoot,
		Logger:            slog.New(slog.NewTextHandler(f.logs, nil)),
		HeartbeatInterval: 50 * time.Millisecond,
		BackoffMin:        20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		CallTimeout: 5 * time.Second,
		Reboot:      func(context.Context, bool) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", f.logs.String())
		}
	})
	return f
}

// fixture is the /sys and /proc of a node with one NIC (mac) and one
// virtio disk of diskGiB.
func fixture(t *testing.T) string {
	root := t.TempDir()
	for p, content := range map[string]string{
		"proc/cpuinfo":                     "processor\t: 0\nmodel name\t: Test CPU\n\nprocessor\t: 1\nmodel name\t: Test CPU\n\n",
		"proc/meminfo":                     "MemTotal:        4026152 kB\n",
		"sys/block/vda/size":               strconv.Itoa(diskGiB<<30/512) + "\n",
		"sys/block/vda/queue/rotational":   "0\n",
		"sys/class/net/eth0/address":       mac + "\n",
		"sys/class/net/eth0/carrier":       "1\n",
		"sys/class/net/eth0/device/vendor": "0x1af4\n",
	} {
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func (f *flow) serveImage(t *testing.T, img []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/image.raw"
}

func (f *flow) node(t *testing.T, id string) map[string]any {
	return f.api.Must(200, "GET", "/v1/nodes/"+id, nil).JSON(t)
}

func (f *flow) diskBytes(t *testing.T, off, n int64) []byte {
	t.Helper()
	d, err := os.Open(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := make([]byte, n)
	if _, err := d.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLifecycleThroughTheAgent(t *testing.T) {
	f := start(t)
	api := f.api
	id := api.CreateNode(map[string]any{"driver": "agent-hardware", "name": "flow-1"})
	api.Must(201, "POST", "/v1/ports", map[string]any{"node_uuid": id, "address": mac})
	n := api.Must(200, "GET", "/v1/nodes/"+id, nil).JSON(t)
	if n["deploy_interface"] != "direct" || n["inspect_interface"] != "agent" {
		t.Fatalf("interfaces: deploy %v, inspect %v; want direct and agent", n["deploy_interface"], n["inspect_interface"])
	}

	api.Provision(id, "manage")
	api.WaitState(id, "manageable")
	api.Provision(id, "inspect")
	api.WaitState(id, "manageable")
	n = f.node(t, id)
	props, _ := n["properties"].(map[string]any)
	if mb, _ := props["memory_mb"].(float64); props["cpus"] != float64(2) || mb < 3931 || props["local_gb"] != float64(diskGiB-1) {
		t.Errorf("inspected properties = %v; want cpus 2, memory_mb >= 3931, local_gb %d", props, diskGiB-1)
	}
	if n["power_state"] != "power off" {
		t.Errorf("power after inspection = %v, want power off", n["power_state"])
	}
	saved := api.Version
	api.Version = "1.81"
	inv := api.Must(200, "GET", "/v1/nodes/"+id+"/inventory", nil).JSON(t)["inventory"].(map[string]any)
	if ifs, _ := inv["interfaces"].([]any); len(ifs) != 1 || ifs[0].(map[string]any)["mac_address"] != mac {
		t.Errorf("inventory interfaces = %v, want the one NIC %s", inv["interfaces"], mac)
	}
	api.Version = saved

	api.Provision(id, "provide")
	api.WaitState(id, "available")
	if got := f.diskBytes(t, 0, 19); !bytes.Equal(got, make([]byte, 19)) {
		t.Errorf("cleaning left the old partition table: %q", got)
	}

	img := testImage(t)
	sum := sha256.Sum256(img)
	api.Must(200, "PATCH", "/v1/nodes/"+id, []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": f.serveImage(t, img)},
		{"op": "add", "path": "/instance_info/image_checksum", "value": hex.EncodeToString(sum[:])},
	})
	api.Must(202, "PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{
		"target": "active", "configdrive": map[string]any{"meta_data": map[string]any{"hostname": "flow-1"}},
	})
	api.WaitState(id, "active")
	n = f.node(t, id)
	if got := f.diskBytes(t, 512, int64(len(img))-512); !bytes.Equal(got, img[512:]) {
		t.Error("the disk does not hold the image after deploy")
	}
	// The config drive went to a new partition at the disk's end.
	mbr := f.diskBytes(t, 0, 512)
	second := mbr[446+16 : 446+32]
	start := int64(binary.LittleEndian.Uint32(second[8:])) * 512
	if start < (diskGiB<<30)-(128<<20) {
		t.Fatalf("config drive partition starts at %d, not near the disk's end", start)
	}
	if pvd := f.diskBytes(t, start+32768, 72); string(pvd[1:6]) != "CD001" || !strings.HasPrefix(string(pvd[40:]), "config-2") {
		t.Errorf("config drive partition holds no ISO labelled config-2: %q", pvd)
	}
	dii, _ := n["driver_internal_info"].(map[string]any)
	timings, _ := dii["agent_timings"].(map[string]any)
	for _, phase := range []string{"power_on", "agent_lookup", "write_image", "install_config_drive", "reboot_to_instance"} {
		if _, ok := timings[phase]; !ok {
			t.Errorf("agent_timings lacks %s: %v", phase, timings)
		}
	}
	if n["power_state"] != "power on" {
		t.Errorf("power after deploy = %v, want power on", n["power_state"])
	}
}

// A deploy the agent cannot carry out ends in deploy failed with the
// agent's reason, and the node can be undeployed again.
func TestAgentFailureFailsTheDeploy(t *testing.T) {
	f := start(t)
	api := f.api
	id := api.CreateNode(map[string]any{"driver": "agent-hardware", "properties": map[string]any{"root_device": map[string]any{"serial": "no-such-disk"}}})
	api.Must(201, "POST", "/v1/ports", map[string]any{"node_uuid": id, "address": mac})
	api.Provision(id, "manage")
	api.WaitState(id, "manageable")
	api.Provision(id, "provide")
	api.WaitState(id, "available")

	img := testImage(t)
	sum := sha256.Sum256(img)
	api.Must(200, "PATCH", "/v1/nodes/"+id, []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": f.serveImage(t, img)},
		{"op": "add", "path": "/instance_info/image_checksum", "value": hex.EncodeToString(sum[:])},
	})
	api.Provision(id, "active")
	api.WaitState(id, "deploy failed")
	n := f.node(t, id)
	if msg, _ := n["last_error"].(string); !strings.Contains(msg, "write_image") || !strings.Contains(msg, "serial") {
		t.Errorf("last_error = %q; want the agent's reason (no disk matches the serial hint)", msg)
	}
	if n["power_state"] != "power off" {
		t.Errorf("power after a failed deploy = %v, want power off", n["power_state"])
	}
	api.Provision(id, "deleted")
	api.WaitState(id, "available")

	// A wrong checksum never reaches the agent: the cache refuses it.
	api.Must(200, "PATCH", "/v1/nodes/"+id, []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": f.serveImage(t, img)},
		{"op": "add", "path": "/instance_info/image_checksum", "value": strings.Repeat("0", 64)},
	})
	api.Provision(id, "active")
	api.WaitState(id, "deploy failed")
	n = f.node(t, id)
	if msg, _ := n["last_error"].(string); !strings.Contains(msg, "checksum") {
		t.Errorf("last_error = %q; want a checksum mismatch", msg)
	}
}
