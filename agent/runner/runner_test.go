package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ingot/ingot/coordinator/agentrpc/agentrpctest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ingot/ingot/coordinator/agentrpc"
	"github.com/ingot/ingot/coordinator/configdrive"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/testlog"
	"github.com/ingot/ingot/proto/agentpb"
)

const (
	testMAC = "52:54:00:ab:cd:01"
	diskMiB = 16
)

// coordinator is the real agent service, over TLS, on a real Redis.
// coordinator is the real agent service, with helpers for what these
// tests check.
type coordinator struct{ *agentrpctest.Env }

func startCoordinator(t *testing.T) *coordinator {
	t.Helper()
	return &coordinator{agentrpctest.Start(t, agentrpc.Config{HeartbeatInterval: time.Second})}
}

func (c *coordinator) node(t *testing.T, state string) string { return c.Node(t, state, testMAC) }

func (c *coordinator) session(t *testing.T, node string) (store.AgentSession, bool) {
	t.Helper()
	s, found, err := c.Store.AgentSessionOf(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	return s, found
}

// status is the status the agent last reported, nil if none.
func (c *coordinator) status(t *testing.T, node string) *agentpb.CommandStatus {
	t.Helper()
	s, _ := c.session(t, node)
	if s.Status == nil {
		return nil
	}
	st := new(agentpb.CommandStatus)
	if err := proto.Unmarshal(s.Status, st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (c *coordinator) send(t *testing.T, node string, cmd *agentpb.Command) {
	t.Helper()
	raw, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Store.SetAgentCommand(context.Background(), node, raw); err != nil {
		t.Fatal(err)
	}
}

// finished waits for the agent to report command id done, and returns
// that status.
func (c *coordinator) finished(t *testing.T, node, id string) *agentpb.CommandStatus {
	t.Helper()
	var st *agentpb.CommandStatus
	waitFor(t, 5*time.Second, "command "+id+" to finish", func() bool {
		st = c.status(t, node)
		return st.GetCommandId() == id && st.GetState() != agentpb.CommandStatus_RUNNING
	})
	return st
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// fixture writes the smallest /sys and /proc the inventory accepts: one
// CPU, one NIC with testMAC, one 20 GiB virtio disk vda.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range map[string]string{
		"proc/cpuinfo":                     "processor\t: 0\nmodel name\t: Test CPU\n\n",
		"proc/meminfo":                     "MemTotal:        4026152 kB\n",
		"sys/block/vda/size":               "41943040\n",
		"sys/block/vda/queue/rotational":   "0\n",
		"sys/class/net/eth0/address":       testMAC + "\n",
		"sys/class/net/eth0/carrier":       "1\n",
		"sys/class/net/eth0/device/vendor": "0x1af4\n",
	} {
		writeFile(t, filepath.Join(root, p), []byte(content))
	}
	return root
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type agent struct {
	*Runner
	log     *testlog.Buffer
	dev     string // the regular file standing in for /dev/vda
	reboots chan bool
	done    chan error
	cancel  context.CancelFunc
}

// startAgent runs a Runner pinned to fingerprint against c, with /dev/vda
// a 16 MiB file of 0xAA bytes, until the test ends.
func startAgent(t *testing.T, c *coordinator, fingerprint string, onReboot func(poweroff bool)) *agent {
	t.Helper()
	devRoot := t.TempDir()
	a := &agent{log: &testlog.Buffer{}, dev: filepath.Join(devRoot, "dev", "vda"), reboots: make(chan bool, 1), done: make(chan error, 1)}
	writeFile(t, a.dev, bytes.Repeat([]byte{0xAA}, diskMiB<<20))
	r, err := New(Config{
		Coordinator:       c.Addr,
		CAFingerprint:     fingerprint,
		Version:           "test-agent",
		Root:              fixture(t),
		DevRoot:           devRoot,
		Logger:            slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HeartbeatInterval: 100 * time.Millisecond,
		BackoffMin:        20 * time.Millisecond,
		BackoffMax:        100 * time.Millisecond,
		CallTimeout:       2 * time.Second,
		Reboot: func(_ context.Context, poweroff bool) error {
			if onReboot != nil {
				onReboot(poweroff)
			}
			a.reboots <- poweroff
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Runner = r
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return a
}

// mbrDisk replaces the disk at path with a sparse 100 MiB one whose MBR
// has one partition, MiB 1 to 21, full of 0xBB.
func mbrDisk(t *testing.T, path string) {
	t.Helper()
	mbr := make([]byte, 512)
	e := mbr[446:][:16]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 1<<11)
	binary.LittleEndian.PutUint32(e[12:], 20<<11)
	mbr[510], mbr[511] = 0x55, 0xaa
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xBB}, 20<<20), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// imageServer serves img slowly enough (about 0.6 s) for heartbeats to
// catch the write running.
func imageServer(t *testing.T, img []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(img)))
		const chunk = 512 << 10
		for off := 0; off < len(img); off += chunk {
			if _, err := w.Write(img[off:min(off+chunk, len(img))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(80 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAgentAgainstCoordinator(t *testing.T) {
	c := startCoordinator(t)
	node := c.node(t, "wait call-back")
	var atReboot *agentpb.CommandStatus
	a := startAgent(t, c, c.CA.Fingerprint(), func(bool) { atReboot = c.status(t, node) })

	// Lookup issues the token; heartbeats keep coming.
	waitFor(t, 5*time.Second, "lookup", func() bool { _, found := c.session(t, node); return found })
	s0, _ := c.session(t, node)
	if s0.TokenHash == "" || s0.Version != "test-agent" {
		t.Fatalf("session after lookup: %+v", s0)
	}
	waitFor(t, 2*time.Second, "a heartbeat", func() bool { s, _ := c.session(t, node); return s.LastHeartbeat.After(s0.LastHeartbeat) })

	img := make([]byte, 4<<20)
	rand.Read(img)
	sum := sha256.Sum256(img)
	digest := hex.EncodeToString(sum[:])
	srv := imageServer(t, img)
	write := func(id, checksum string) *agentpb.Command {
		return &agentpb.Command{Id: id, Kind: &agentpb.Command_WriteImage{WriteImage: &agentpb.WriteImage{
			Url: srv.URL + "/img.raw", Format: "raw", ChecksumAlgorithm: "sha256", Checksum: checksum,
			SizeBytes: uint64(len(img)), RootDevice: &agentpb.RootDeviceHints{Hints: map[string]string{"name": "vda"}},
		}}}
	}

	t.Run("WriteImage", func(t *testing.T) {
		c.send(t, node, write("w1", digest))
		waitFor(t, 5*time.Second, "progress of the running write", func() bool {
			st := c.status(t, node)
			return st.GetCommandId() == "w1" && st.GetState() == agentpb.CommandStatus_RUNNING &&
				st.GetProgress().GetPhase() == "write" && st.GetProgress().GetBytesTotal() == uint64(len(img))
		})
		st := c.finished(t, node, "w1")
		if st.GetState() != agentpb.CommandStatus_SUCCEEDED || st.GetProgress().GetBytesDone() != uint64(len(img)) {
			t.Fatalf("w1: %v", st)
		}
		got, err := os.ReadFile(a.dev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:len(img)], img) || got[len(img)] != 0xAA {
			t.Error("the disk does not hold the image (followed by what was there)")
		}
		n, _, err := c.Store.GetNode(context.Background(), node)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := n.DriverInternalInfo["agent_progress"].(map[string]any); p["command_id"] != "w1" {
			t.Errorf("progress in driver_internal_info: %v", n.DriverInternalInfo)
		}
	})

	t.Run("WriteImageWrongChecksum", func(t *testing.T) {
		wrong := strings.Repeat("0", 64)
		c.send(t, node, write("w2", wrong))
		st := c.finished(t, node, "w2")
		if st.GetState() != agentpb.CommandStatus_FAILED || !strings.Contains(st.GetError(), wrong) || !strings.Contains(st.GetError(), digest) {
			t.Errorf("w2: %v", st)
		}
	})

	t.Run("EraseMetadata", func(t *testing.T) {
		c.send(t, node, &agentpb.Command{Id: "e1", Kind: &agentpb.Command_EraseMetadata{EraseMetadata: &agentpb.EraseMetadata{}}})
		if st := c.finished(t, node, "e1"); st.GetState() != agentpb.CommandStatus_SUCCEEDED {
			t.Fatalf("e1: %v", st)
		}
		got, err := os.ReadFile(a.dev)
		if err != nil {
			t.Fatal(err)
		}
		zero := make([]byte, 1<<20)
		if !bytes.Equal(got[:1<<20], zero) || !bytes.Equal(got[len(got)-1<<20:], zero) {
			t.Error("first or last MiB not zeroed")
		}
		if got[8<<20] != 0xAA {
			t.Error("metadata erase touched the middle of the disk")
		}
		c.send(t, node, &agentpb.Command{Id: "e2", Kind: &agentpb.Command_EraseMetadata{EraseMetadata: &agentpb.EraseMetadata{Disks: []string{"sdz"}}}})
		if st := c.finished(t, node, "e2"); st.GetState() != agentpb.CommandStatus_FAILED || !strings.Contains(st.GetError(), "/dev/sdz is not in the inventory") {
			t.Errorf("e2: %v", st)
		}
	})

	t.Run("InventoryLogs", func(t *testing.T) {
		c.send(t, node, &agentpb.Command{Id: "i1", Kind: &agentpb.Command_GetInventory{GetInventory: &agentpb.GetInventory{}}})
		if st := c.finished(t, node, "i1"); len(st.GetInventory().GetDisks()) != 1 || st.GetInventory().GetDisks()[0].GetName() != "/dev/vda" {
			t.Errorf("i1: %v", st)
		}
		c.send(t, node, &agentpb.Command{Id: "l1", Kind: &agentpb.Command_CollectLogs{CollectLogs: &agentpb.CollectLogs{}}})
		st := c.finished(t, node, "l1")
		logs := untar(t, st.GetLogs())["ingot-agent.log"]
		if !strings.Contains(logs, "command_id=w1") {
			t.Errorf("l1: collected logs %q", logs)
		}
	})

	t.Run("InstallConfigDrive", func(t *testing.T) {
		// The coordinator's own builder makes the drives: what it sends is
		// what the agent must install.
		build := func(host string) []byte {
			d, err := configdrive.Build(map[string]any{"meta_data": map[string]any{"hostname": host}}, node, "")
			if err != nil {
				t.Fatal(err)
			}
			return d.ISO
		}
		iso1, iso2 := build("one"), build("two")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/cd.iso" {
				http.NotFound(w, r)
				return
			}
			w.Write(iso2)
		}))
		t.Cleanup(srv.Close)
		vda := &agentpb.RootDeviceHints{Hints: map[string]string{"name": "vda"}}
		install := func(id string, cd *agentpb.InstallConfigDrive) *agentpb.CommandStatus {
			t.Helper()
			c.send(t, node, &agentpb.Command{Id: id, Kind: &agentpb.Command_InstallConfigDrive{InstallConfigDrive: cd}})
			return c.finished(t, node, id)
		}

		// The disk so far holds no partition table.
		st := install("d0", &agentpb.InstallConfigDrive{Source: &agentpb.InstallConfigDrive_Iso{Iso: iso1}, RootDevice: vda})
		if st.GetState() != agentpb.CommandStatus_FAILED || !strings.Contains(st.GetError(), "install config drive on "+a.dev+": no partition table") {
			t.Errorf("d0: %v", st)
		}

		mbrDisk(t, a.dev)
		const partStart, partSectors = (100 - 64) << 20, 64 << 11 // the last 64 MiB
		for _, tc := range []struct {
			id  string
			cd  *agentpb.InstallConfigDrive
			iso []byte
		}{
			{"d1", &agentpb.InstallConfigDrive{Source: &agentpb.InstallConfigDrive_Iso{Iso: iso1}, RootDevice: vda}, iso1},
			{"d2", &agentpb.InstallConfigDrive{Source: &agentpb.InstallConfigDrive_Url{Url: srv.URL + "/cd.iso"}, RootDevice: vda}, iso2},
		} {
			if st := install(tc.id, tc.cd); st.GetState() != agentpb.CommandStatus_SUCCEEDED {
				t.Fatalf("%s: %v", tc.id, st)
			}
			got, err := os.ReadFile(a.dev)
			if err != nil {
				t.Fatal(err)
			}
			e := got[446+16:][:16] // partition 2, the same both times
			if e[4] != 0x83 || binary.LittleEndian.Uint32(e[8:]) != partStart/512 || binary.LittleEndian.Uint32(e[12:]) != partSectors {
				t.Errorf("%s: MBR entry 2 = % x, want type 83, sectors %d+%d", tc.id, e, partStart/512, partSectors)
			}
			if got[446+2*16+4] != 0 {
				t.Errorf("%s: a third partition was added", tc.id)
			}
			if !bytes.Equal(got[partStart:partStart+len(tc.iso)], tc.iso) {
				t.Errorf("%s: partition 2 does not hold the config drive", tc.id)
			}
			if !bytes.Equal(got[1<<20:21<<20], bytes.Repeat([]byte{0xBB}, 20<<20)) {
				t.Errorf("%s: partition 1 changed", tc.id)
			}
		}

		for _, tc := range []struct {
			id      string
			cd      *agentpb.InstallConfigDrive
			wantErr string
		}{
			{"d3", &agentpb.InstallConfigDrive{Source: &agentpb.InstallConfigDrive_Url{Url: srv.URL + "/gone.iso"}, RootDevice: vda},
				"install config drive: download the config drive: GET " + srv.URL + "/gone.iso: HTTP 404 Not Found"},
			{"d4", &agentpb.InstallConfigDrive{Source: &agentpb.InstallConfigDrive_Iso{Iso: iso1},
				RootDevice: &agentpb.RootDeviceHints{Hints: map[string]string{"name": "sdz"}}},
				"install config drive: choose the target disk: no matching disk"},
			{"d5", &agentpb.InstallConfigDrive{Source: &agentpb.InstallConfigDrive_Iso{Iso: []byte("#cloud-config")}, RootDevice: vda},
				"too small for an ISO 9660 image"},
			{"d6", &agentpb.InstallConfigDrive{RootDevice: vda}, "neither an ISO nor a URL"},
		} {
			if st := install(tc.id, tc.cd); st.GetState() != agentpb.CommandStatus_FAILED || !strings.Contains(st.GetError(), tc.wantErr) {
				t.Errorf("%s: %v, want an error saying %q", tc.id, st, tc.wantErr)
			}
		}
	})

	t.Run("PowerOff", func(t *testing.T) {
		c.send(t, node, &agentpb.Command{Id: "p1", Kind: &agentpb.Command_PowerOff{PowerOff: &agentpb.PowerOff{}}})
		select {
		case poweroff := <-a.reboots:
			if !poweroff {
				t.Error("Reboot called with poweroff=false")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no power off")
		}
		if atReboot.GetCommandId() != "p1" || atReboot.GetState() != agentpb.CommandStatus_SUCCEEDED {
			t.Errorf("when the node powered off, the coordinator knew: %v", atReboot)
		}
	})

	t.Run("SessionEnds", func(t *testing.T) {
		c.SetState(t, node, "deploy failed")
		waitFor(t, 5*time.Second, "the agent to look up again", func() bool {
			return strings.Contains(a.log.String(), "code=FailedPrecondition")
		})
		time.Sleep(300 * time.Millisecond) // several retries
		if n := strings.Count(a.log.String(), `level=WARN msg="lookup failed; retrying" code=FailedPrecondition`); n != 1 {
			t.Errorf("the same lookup failure logged %d times at WARN, want once", n)
		}
		c.SetState(t, node, "deploying")
		waitFor(t, 5*time.Second, "a new session", func() bool { _, found := c.session(t, node); return found })
	})

	a.cancel()
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
		a.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if strings.Contains(a.log.String(), "Bearer") {
		t.Error("the token reached the log")
	}
}

// A server whose CA is not the pinned one gets no inventory: the
// handshake fails, and the agent keeps retrying.
func TestRefusesServerOfAnotherCA(t *testing.T) {
	c := startCoordinator(t)
	node := c.node(t, "wait call-back")
	other, err := agentrpc.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, c, other.Fingerprint(), nil)
	waitFor(t, 5*time.Second, "a retried handshake", func() bool { return c.Accepts.Load() >= 2 })
	if _, found := c.session(t, node); found {
		t.Error("the agent looked its node up on a server it must not trust")
	}
	if l := a.log.String(); !strings.Contains(l, "pinned CA fingerprint") || strings.Count(l, "level=WARN") != 1 {
		t.Errorf("log: %s", l)
	}
}

// A second agent for a node whose token is issued stops with ErrNodeOwned.
func TestAnotherAgentOwnsTheNode(t *testing.T) {
	c := startCoordinator(t)
	node := c.node(t, "clean wait")
	startAgent(t, c, c.CA.Fingerprint(), nil)
	waitFor(t, 5*time.Second, "lookup", func() bool { _, found := c.session(t, node); return found })
	b := startAgent(t, c, c.CA.Fingerprint(), nil)
	select {
	case err := <-b.done:
		if !errors.Is(err, ErrNodeOwned) {
			t.Errorf("second agent: %v", err)
		}
		b.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("the second agent did not give up")
	}
}

// sfdiskPartitions is the table of the disk at path as sfdisk reads it.
func sfdiskPartitions(t *testing.T, path string) []struct {
	Start, Size int64
	Type        string
} {
	t.Helper()
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		t.Skip("sfdisk not installed (apt-get install fdisk)")
	}
	out, err := exec.Command(sfdisk, "--json", path).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var js struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size int64
				Type        string
			}
		}
	}
	if err := json.Unmarshal(out, &js); err != nil || js.PartitionTable.Label != "gpt" {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	return js.PartitionTable.Partitions
}

// A partition image goes into the root partition of a new GPT, and the
// config drive still finds room at the end of the disk.
func TestPartitionImage(t *testing.T) {
	c := startCoordinator(t)
	node := c.node(t, "wait call-back")
	a := startAgent(t, c, c.CA.Fingerprint(), nil)
	waitFor(t, 5*time.Second, "lookup", func() bool { _, found := c.session(t, node); return found })
	if err := os.Truncate(a.dev, 128<<20); err != nil { // 0xAA in the first 16 MiB
		t.Fatal(err)
	}

	img := make([]byte, 3<<20+512)
	rand.Read(img)
	sum := sha256.Sum256(img)
	srv := imageServer(t, img)
	vda := &agentpb.RootDeviceHints{Hints: map[string]string{"name": "vda"}}
	write := func(id string, l *agentpb.PartitionLayout) *agentpb.CommandStatus {
		t.Helper()
		c.send(t, node, &agentpb.Command{Id: id, Kind: &agentpb.Command_WriteImage{WriteImage: &agentpb.WriteImage{
			Url: srv.URL + "/img.raw", Format: "raw", ChecksumAlgorithm: "sha256", Checksum: hex.EncodeToString(sum[:]),
			SizeBytes: uint64(len(img)), RootDevice: vda, PartitionLayout: l,
		}}})
		return c.finished(t, node, id)
	}

	st := write("w1", &agentpb.PartitionLayout{EfiSystemPartition: true, EfiMib: 8})
	if st.GetState() != agentpb.CommandStatus_SUCCEEDED {
		t.Fatalf("w1: %v", st)
	}
	// ESP at 1 MiB, root from 9 MiB to 63 MiB: 128 MiB less 64 MiB and
	// the backup GPT, rounded down to a MiB.
	parts := sfdiskPartitions(t, a.dev)
	if len(parts) != 2 ||
		parts[0].Start != 1<<11 || parts[0].Size != 8<<11 || parts[0].Type != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" ||
		parts[1].Start != 9<<11 || parts[1].Size != 54<<11 || parts[1].Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" {
		t.Fatalf("partitions %+v", parts)
	}
	got, err := os.ReadFile(a.dev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[9<<20:9<<20+len(img)], img) {
		t.Error("the image is not at the start of the root partition")
	}
	if !strings.Contains(a.log.String(), "root_partition=2") || !strings.Contains(a.log.String(), "efi_system_partition=1") {
		t.Errorf("the log does not name the partitions:\n%s", a.log.String())
	}

	iso, err := configdrive.Build(map[string]any{"meta_data": map[string]any{"hostname": "p"}}, node, "")
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, node, &agentpb.Command{Id: "d1", Kind: &agentpb.Command_InstallConfigDrive{InstallConfigDrive: &agentpb.InstallConfigDrive{
		Source: &agentpb.InstallConfigDrive_Iso{Iso: iso.ISO}, RootDevice: vda,
	}}})
	if st := c.finished(t, node, "d1"); st.GetState() != agentpb.CommandStatus_SUCCEEDED {
		t.Fatalf("d1: %v", st)
	}
	// Right after the root partition: the last whole MiB before the
	// backup GPT.
	parts = sfdiskPartitions(t, a.dev)
	if len(parts) != 3 || parts[2].Start != 63<<11 || parts[2].Size != 64<<11 {
		t.Fatalf("partitions after the config drive %+v", parts)
	}
	if got, err = os.ReadFile(a.dev); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[63<<20:63<<20+len(iso.ISO)], iso.ISO) || !bytes.Equal(got[9<<20:9<<20+len(img)], img) {
		t.Error("the config drive is not in partition 3, or the image changed")
	}
	if sgdisk, err := exec.LookPath("sgdisk"); err == nil {
		if out, err := exec.Command(sgdisk, "-v", a.dev).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
	}

	for _, tc := range []struct {
		id   string
		l    *agentpb.PartitionLayout
		want string
	}{
		{"w2", &agentpb.PartitionLayout{RootMib: 2}, "image is larger than its partition"},
		{"w3", &agentpb.PartitionLayout{RootMib: 64}, "create partitions on " + a.dev + ": the disk (134217728 bytes, 128 MiB) is too small for a 64 MiB root partition"},
	} {
		if st := write(tc.id, tc.l); st.GetState() != agentpb.CommandStatus_FAILED || !strings.Contains(st.GetError(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.id, st, tc.want)
		}
	}
}
