// Package lab runs a small bare-metal lab for end-to-end tests: a network
// namespace with a boot network (bridge, 192.0.2.0/24) and a link to the
// host (veth, 198.51.100.4/30), a real redis-server, the coordinator
// binary serving DHCP, TFTP, HTTP boot, the agent service and the API
// inside the namespace, and QEMU machines (TCG) each driven by its own
// virtual BMC process over IPMI. Tests enrol and deploy nodes through the
// REST API, exactly as an operator would.
//
// Everything is torn down when the test ends, on failure too; the logs of
// a failed test (coordinator, BMCs, serial consoles) are kept in a
// directory the test prints.
package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/e2e/netns"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// Addresses: the boot network inside the namespace, and the link to the
// host, on which the API listens and the tests serve images.
const (
	BootIP = "192.0.2.1"
	// The link to the host is a /30 of its own, apart from make demo's
	// (198.51.100.0/30), so a test run beside a running demo misroutes
	// nothing.
	HostIP     = "198.51.100.5"
	LabIP      = "198.51.100.6"
	apiPort    = 6385
	bmcPort    = 6230
	bmcUser    = "admin"
	bmcPass    = "e2e-secret-pw"
	dhcpRange  = "192.0.2.100-192.0.2.199"
	shortAgent = 2 * time.Second
)

// Options shape a lab. Zero values take the defaults.
type Options struct {
	Nodes     int    // machines (default 1)
	DHCPMode  string // "full" (default) or "proxy" (beside a plain DHCP server)
	DiskMiB   int    // each machine's disk (default 4096, sparse)
	MemoryMiB int    // each machine's memory (default 1024)
	CPUs      int    // each machine's vCPUs (default 1)
	// Coordinator adds flags to the coordinator's command line.
	Coordinator []string
}

// Lab is a running lab.
type Lab struct {
	t    testing.TB
	opts Options
	// Dir holds the logs and disks; kept if the test fails.
	Dir   string
	NS    *netns.NS
	API   *coordinatortest.Client
	Nodes []*Node

	bin            string // directory of the built binaries
	redisURL       string
	kernel, initrd string

	mu        sync.Mutex
	coord     *exec.Cmd
	coordDone chan struct{}
	coordLog  *os.File

	images   *http.Server
	imageURL string
	hits     sync.Map // path -> *atomic.Int64
	served   sync.Map // path -> file
}

// Node is one machine with its BMC.
type Node struct {
	Name string
	MAC  string
	Disk string // the file behind its virtio disk
	Dir  string // its QEMU directory: console.log is its serial console
	BMC  string // host:port of its virtual BMC
	UUID string // set by Enroll
	bmc  *exec.Cmd
	done chan struct{}
}

// Available says why a lab cannot run here ("" if it can).
func Available() string {
	if why := netns.Available(); why != "" {
		return why
	}
	for _, tool := range []string{"qemu-system-x86_64", "redis-server", "sfdisk", "mkfs.vfat", "mcopy", "syslinux"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed (scripts/setup.sh test installs it)"
		}
	}
	return ""
}

// Skip skips t when no lab can run here, or fails it when
// INGOT_REQUIRE_TOOLS is set (as in make test).
func Skip(t testing.TB) {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
}

// Start builds what it needs and starts a lab that ends with the test.
func Start(t testing.TB, o Options) *Lab {
	t.Helper()
	Skip(t)
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.DHCPMode == "" {
		o.DHCPMode = "full"
	}
	if o.DiskMiB == 0 {
		o.DiskMiB = 4096
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 1
	}
	dir, err := os.MkdirTemp("", "ingot-lab-")
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, opts: o, Dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab logs kept in %s (coordinator.log, node-*/console.log, node-*/bmc.log)", dir)
			return
		}
		os.RemoveAll(dir)
	})
	l.bin = Build(t)
	l.kernel, l.initrd = AgentImages(t)

	rs := redisproc.StartForTest(t)
	l.redisURL = rs.URL()

	// Cleanups run last-in first-out: the namespace goes after every
	// process in it.
	l.NS = netns.New(t, "ingot-lab")
	l.NS.Bridge("br0", BootIP+"/24")
	l.NS.Veth(fmt.Sprintf("ingot%d", os.Getpid()%100000), HostIP+"/30", "uplink", LabIP+"/30")
	if o.DHCPMode == "proxy" {
		l.startPlainDHCP()
	}
	l.serveImages()
	for i := range o.Nodes {
		l.Nodes = append(l.Nodes, l.startNode(i))
	}
	l.StartCoordinator()
	l.API = &coordinatortest.Client{T: t, Base: fmt.Sprintf("http://%s:%d", LabIP, apiPort), Version: "1.82"}
	return l
}

// Build builds the coordinator and the virtual BMC once per test binary.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// Under build/ (ignored by git), rebuilt each run from Go's cache.
		root := RepoRoot(t)
		dir := filepath.Join(root, "build", "lab-bin")
		cmd := exec.Command("go", "build", "-o", dir+"/", "./coordinator", "./e2e/vbmc/cmd/vbmc")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
		buildDir = dir
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// AgentImages builds the agent's kernel and initramfs (make initramfs,
// which does nothing when they are up to date) and returns their paths.
func AgentImages(t testing.TB) (kernel, initramfs string) {
	t.Helper()
	root := RepoRoot(t)
	agentOnce.Do(func() {
		cmd := exec.Command("make", "-s", "initramfs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("make initramfs: %v\n%s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return filepath.Join(root, "build", "initramfs", "vmlinuz"), filepath.Join(root, "build", "initramfs", "initramfs.cpio.gz")
}

var (
	agentOnce sync.Once
	agentErr  error
)

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// StartCoordinator starts the coordinator in the namespace and waits for
// its API.
func (l *Lab) StartCoordinator() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.coordLog == nil {
		f, err := os.OpenFile(filepath.Join(l.Dir, "coordinator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			l.t.Fatal(err)
		}
		l.coordLog = f
		l.t.Cleanup(func() { l.StopCoordinator(); f.Close() })
	}
	args := []string{
		"--listen", fmt.Sprintf("%s:%d", LabIP, apiPort), "--redis-url", l.redisURL,
		"--data-dir", filepath.Join(l.Dir, "data"), "--host", "lab-coordinator",
		"--boot-interface", "br0", "--dhcp-mode", l.opts.DHCPMode,
		"--agent-kernel", l.kernel, "--agent-initramfs", l.initrd,
		"--agent-heartbeat-interval", shortAgent.String(),
		"--power-sync-interval", "10s", "--log-level", "debug",
	}
	if l.opts.DHCPMode == "full" {
		args = append(args, "--dhcp-range", dhcpRange)
	}
	args = append(args, l.opts.Coordinator...)
	cmd := l.NS.Command(filepath.Join(l.bin, "coordinator"), args...)
	cmd.Stdout, cmd.Stderr = l.coordLog, l.coordLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.coord, l.coordDone = cmd, done

	url := fmt.Sprintf("http://%s:%d/v1", LabIP, apiPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-done:
			l.t.Fatalf("the coordinator exited at start; see %s", l.coordLog.Name())
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the coordinator's API did not answer within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopCoordinator stops the coordinator gracefully (SIGTERM).
func (l *Lab) StopCoordinator() { l.stopCoordinator(syscall.SIGTERM) }

// KillCoordinator kills the coordinator as a crash would (SIGKILL).
func (l *Lab) KillCoordinator() { l.stopCoordinator(syscall.SIGKILL) }

func (l *Lab) stopCoordinator(sig syscall.Signal) {
	l.mu.Lock()
	cmd, done := l.coord, l.coordDone
	l.coord = nil
	l.mu.Unlock()
	if cmd == nil {
		return
	}
	// ip netns exec execs the coordinator, so the PID is the
	// coordinator's own.
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// CoordinatorLog returns the coordinator's log so far.
func (l *Lab) CoordinatorLog() string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "coordinator.log"))
	return string(b)
}

func (l *Lab) startNode(i int) *Node {
	l.t.Helper()
	n := &Node{
		Name: fmt.Sprintf("node-%d", i),
		MAC:  fmt.Sprintf("52:54:00:e2:e0:%02x", i+1),
		BMC:  net.JoinHostPort(BootIP, strconv.Itoa(bmcPort+i)),
		done: make(chan struct{}),
	}
	n.Dir = filepath.Join(l.Dir, n.Name)
	n.Disk = filepath.Join(n.Dir, "disk.raw")
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	f, err := os.Create(n.Disk)
	if err != nil {
		l.t.Fatal(err)
	}
	f.Truncate(int64(l.opts.DiskMiB) << 20)
	f.Close()
	tap := fmt.Sprintf("tap%d", i)
	l.NS.Tap(tap, "br0")
	qemu := strings.Join([]string{
		"-m", strconv.Itoa(l.opts.MemoryMiB), "-smp", strconv.Itoa(l.opts.CPUs), "-cpu", "max",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + n.MAC,
		"-drive", "file=" + n.Disk + ",if=virtio,format=raw,cache=none,aio=native",
		// A failed network boot retries instead of halting.
		"-boot", "reboot-timeout=2000",
	}, " ")
	logf, err := os.Create(filepath.Join(n.Dir, "bmc.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := l.NS.Command(filepath.Join(l.bin, "vbmc"), "--listen", n.BMC, "--user", bmcUser, "--password", bmcPass,
		"--qemu-dir", n.Dir, "--qemu-args", qemu)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	n.bmc = cmd
	go func() { cmd.Wait(); logf.Close(); close(n.done) }()
	l.t.Cleanup(func() {
		// The BMC powers its machine off as it stops.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-n.done
		}
	})
	return n
}

// Enroll creates the node of n through the API, with the ipmi driver and
// its BMC's address and credentials, its NIC as a PXE port, and extra
// fields (properties, ...) merged in. It returns the node's UUID.
func (l *Lab) Enroll(n *Node, extra map[string]any) string {
	l.t.Helper()
	host, port, _ := net.SplitHostPort(n.BMC)
	body := map[string]any{
		"name": n.Name, "driver": "ipmi",
		"driver_info": map[string]any{
			"ipmi_address": host, "ipmi_port": port, "ipmi_username": bmcUser, "ipmi_password": bmcPass,
		},
	}
	for k, v := range extra {
		body[k] = v
	}
	n.UUID = l.API.Must(201, "POST", "/v1/nodes", body).JSON(l.t)["uuid"].(string)
	l.API.Must(201, "POST", "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": n.MAC, "pxe_enabled": true})
	return n.UUID
}

// Node returns the node's API view.
func (l *Lab) Node(id string) map[string]any {
	l.t.Helper()
	return l.API.Must(200, "GET", "/v1/nodes/"+id, nil).JSON(l.t)
}

// WaitState waits until node id is in state (resting there, with no
// target, if state is a stable one), failing the
// test with the node's last_error when it rests elsewhere or time runs
// out. It returns the node.
func (l *Lab) WaitState(id, state string, timeout time.Duration) map[string]any {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var n map[string]any
	for {
		r := l.API.Do("GET", "/v1/nodes/"+id, nil)
		if r.Code == http.StatusOK {
			n = r.JSON(l.t)
			ps, _ := n["provision_state"].(string)
			if ps == state && (n["target_provision_state"] == nil || !sm.State(state).Stable()) {
				return n
			}
			if n["target_provision_state"] == nil && strings.HasSuffix(ps, "failed") && !strings.HasSuffix(state, "failed") {
				l.t.Fatalf("node %s ended in %q, not %q: last_error %v", id, ps, state, n["last_error"])
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("node %s not in %q after %s: provision_state %v, target %v, last_error %v",
				id, state, timeout, n["provision_state"], n["target_provision_state"], n["last_error"])
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Console returns n's serial console output so far (all its boots).
func (n *Node) Console() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "console.log"))
	return string(b)
}

// ConsoleSize is where the console output ends now: pass it to
// WaitConsole to match only what comes after.
func (n *Node) ConsoleSize() int {
	fi, err := os.Stat(filepath.Join(n.Dir, "console.log"))
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

// WaitConsole waits for a line containing want in n's console after
// offset and returns that line.
func (n *Node) WaitConsole(t testing.TB, offset int, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := n.Console()
		if len(out) > offset {
			if i := strings.Index(out[offset:], want); i >= 0 {
				line := out[offset+i:]
				if j := strings.IndexAny(line, "\r\n"); j >= 0 {
					line = line[:j]
				}
				return line
			}
		}
		if time.Now().After(deadline) {
			tail := out[max(offset, len(out)-3000):]
			t.Fatalf("%s: no %q on the console within %s; last output:\n%s", n.Name, want, timeout, tail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// serveImages serves files to the coordinator from the host side of the
// link, counting requests, as a site's image server would.
func (l *Lab) serveImages() {
	ln, err := net.Listen("tcp", HostIP+":0")
	if err != nil {
		l.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, _ := l.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		if r.Method == http.MethodGet {
			c.(*atomic.Int64).Add(1)
		}
		path, ok := l.served.Load(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, path.(string))
	})
	l.images = &http.Server{Handler: mux}
	go l.images.Serve(ln)
	l.t.Cleanup(func() { l.images.Close() })
	l.imageURL = "http://" + ln.Addr().String()
}

// ServeImage serves the file at path and returns its URL.
func (l *Lab) ServeImage(path string) string {
	name := "/" + filepath.Base(path)
	l.served.Store(name, path)
	return l.imageURL + name
}

// Downloads says how many times the image at url was fetched.
func (l *Lab) Downloads(url string) int64 {
	c, ok := l.hits.Load(strings.TrimPrefix(url, l.imageURL))
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// startPlainDHCP runs busybox udhcpd on the boot network, as a site's own
// DHCP server that knows nothing of PXE, for proxy mode: on a machine of
// its own (a namespace on the bridge, 192.0.2.2).
func (l *Lab) startPlainDHCP() {
	site := netns.New(l.t, "ingot-site")
	l.NS.IP("link", "add", "site0", "type", "veth", "peer", "name", "eth0", "netns", site.Name)
	l.NS.IP("link", "set", "site0", "master", "br0", "up")
	site.IP("addr", "add", "192.0.2.2/24", "dev", "eth0")
	site.IP("link", "set", "eth0", "up")
	conf := filepath.Join(l.Dir, "udhcpd.conf")
	leases := filepath.Join(l.Dir, "udhcpd.leases")
	os.WriteFile(leases, nil, 0o644)
	cfg := fmt.Sprintf("start 192.0.2.50\nend 192.0.2.90\ninterface eth0\nlease_file %s\npidfile %s\noption subnet 255.255.255.0\noption lease 3600\n",
		leases, filepath.Join(l.Dir, "udhcpd.pid"))
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		l.t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(l.Dir, "udhcpd.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := site.Command("busybox", "udhcpd", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
}

// Provision sends a provision verb with an optional body (configdrive...).
func (l *Lab) Provision(id, target string, extra map[string]any) {
	l.t.Helper()
	body := map[string]any{"target": target}
	for k, v := range extra {
		body[k] = v
	}
	l.API.Must(202, "PUT", "/v1/nodes/"+id+"/states/provision", body)
}

// DiskHead returns the first n bytes of the node's disk.
func (n *Node) DiskHead(t testing.TB, size int) []byte {
	t.Helper()
	f, err := os.Open(n.Disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// Zero reports whether b is all zero bytes.
func Zero(b []byte) bool { return len(bytes.TrimLeft(b, "\x00")) == 0 }

// Context is a context for calls the lab makes on the test's behalf.
func (l *Lab) Context() context.Context { return context.Background() }
