// Package agentboot boots the real agent ramdisk (`make initramfs`) in
// QEMU from the real coordinator, over the whole network boot chain:
// the NIC's iPXE ROM gets a lease and its script from the coordinator's
// DHCP and HTTP servers, boots the kernel and initramfs they name, and
// the agent loads its modules, gets its own lease, looks its node up over
// TLS pinned to the coordinator's CA and heartbeats.
package agentboot

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/e2e/netns"
	"github.com/ingot/ingot/pkg/api"
)

// requireTools is set by `make test`: missing tools fail instead of skip.
var requireTools = os.Getenv("INGOT_REQUIRE_TOOLS") != ""

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if requireTools {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// heartbeatInterval is short so that the test sees two heartbeats soon.
const heartbeatInterval = time.Second

func TestAgentBootsAndHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ramdisk and boots QEMU twice: not with -short")
	}
	if why := netns.Available(); why != "" {
		skipOrFail(t, "%s", why)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		skipOrFail(t, "qemu-system-x86_64 is required: %v", err)
	}
	root, _ := filepath.Abs("../..")
	logs := logDir(t)
	vmlinuz, initrd := buildRamdisk(t, root)
	coordinator := filepath.Join(logs, "coordinator")
	if out, err := exec.Command("go", "build", "-o", coordinator, "../../coordinator").CombinedOutput(); err != nil {
		t.Fatalf("build coordinator: %v\n%s", err, out)
	}

	rs := redisproc.StartForTest(t)
	ctx := t.Context()
	st, err := store.Open(ctx, rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	ns := netns.New(t, "ingot-agent")
	ns.Bridge("br0", "192.0.2.1/24")

	for i, tt := range []struct {
		name, kernelArgs string
		pid1             bool
	}{
		// The ramdisk as built: the agent is PID 1.
		{name: "agent as init", kernelArgs: "console=ttyS0,115200", pid1: true},
		// The debugging path (initramfs/README.md): u-root's init runs
		// the agent as its uinit with -early-boot.
		{name: "agent as u-root uinit", kernelArgs: "console=ttyS0,115200 rdinit=/bbin/init -- -test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xa6, 0x00, byte(i + 1)}
			node := enroll(t, st, mac)
			tap := "tap" + string(rune('0'+i))
			ns.Tap(tap, "br0")
			stopCoord := startCoordinator(t, ns, coordinator, rs.URL(), filepath.Join(logs, "data"),
				filepath.Join(logs, "coordinator-"+slug(tt.name)+".log"), vmlinuz, initrd, tt.kernelArgs)
			defer stopCoord()

			serial := filepath.Join(logs, "console-"+slug(tt.name)+".log")
			disk := filepath.Join(logs, "disk-"+slug(tt.name)+".raw")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(disk, 64<<20); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			stopVM := startVM(t, ns, tap, mac, disk, serial)
			defer stopVM()

			// Lookup (a session appears), then two heartbeats (its last
			// call moves twice).
			var lookedUp time.Duration
			var beats []time.Time
			deadline := time.Now().Add(90 * time.Second)
			for len(beats) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("no lookup and two heartbeats within 90 s (saw %d calls); console:\n%s", len(beats), tail(serial))
				}
				sess, found, err := st.AgentSessionOf(ctx, node.UUID)
				if err != nil {
					t.Fatal(err)
				}
				if found && (len(beats) == 0 || sess.LastHeartbeat.After(beats[len(beats)-1])) {
					if len(beats) == 0 {
						lookedUp = time.Since(start)
					}
					beats = append(beats, sess.LastHeartbeat)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if age := time.Since(beats[len(beats)-1]); age > 3*heartbeatInterval {
				t.Errorf("the last heartbeat is %s old", age)
			}

			console := read(t, serial)
			switch m := regexp.MustCompile(`msg="ingot agent starting" .* pid=(\d+)`).FindStringSubmatch(console); {
			case m == nil:
				t.Errorf("the agent never started:\n%s", tail(serial))
			case tt.pid1 && m[1] != "1":
				t.Errorf("the agent is PID %s, not init", m[1])
			case !tt.pid1 && (m[1] == "1" || !strings.Contains(console, "Welcome to u-root")):
				t.Errorf("the agent (PID %s) did not run under u-root's init", m[1])
			}
			for _, want := range []string{
				`msg="kernel module loaded" module=virtio_pci`,
				`msg="kernel module loaded" module=virtio_net`,
				`msg="kernel module loaded" module=virtio_blk`,
				`msg="DHCP lease" nic=eth0 mac=` + mac.String(),
				`msg="network up"`,
				`msg="looked up" node=` + node.UUID,
			} {
				if !strings.Contains(console, want) {
					t.Errorf("the console lacks %q:\n%s", want, tail(serial))
				}
			}
			// The agent's own lease (beside iPXE's, the same address).
			ip, _, found, err := st.Lease(ctx, mac)
			if err != nil || !found {
				t.Errorf("no lease for %s in Redis: found=%v err=%v", mac, found, err)
			} else if m := regexp.MustCompile(`msg="DHCP lease" nic=eth0 mac=\S+ addr=(\S+)/24`).FindStringSubmatch(console); m == nil || m[1] != ip.String() {
				t.Errorf("the agent's lease %v is not the coordinator's %s", m, ip)
			}
			t.Logf("%s: QEMU start → lookup %s, %d heartbeats after it; initramfs %s",
				tt.name, lookedUp.Round(100*time.Millisecond), len(beats)-1, size(initrd))
		})
	}
}

// buildRamdisk runs the ramdisk build (make initramfs) and returns its
// kernel and initramfs. A kernel that cannot be fetched skips the test,
// as in e2e/pxe; a build that fails fails it.
func buildRamdisk(t *testing.T, root string) (vmlinuz, initrd string) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(root, "scripts", "fetch-kernel.sh"), filepath.Join(root, "build", "kernel")).CombinedOutput(); err != nil {
		skipOrFail(t, "fetch kernel: %v\n%s", err, out)
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "initramfs", "build.sh"))
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("initramfs/build.sh: %v\n%s", err, out)
	}
	t.Logf("initramfs/build.sh took %s:\n%s", time.Since(start).Round(100*time.Millisecond), lastLines(string(out), 3))
	dir := filepath.Join(root, "build", "initramfs")
	return filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.cpio.gz")
}

// enroll creates a node waiting for its agent (inspect wait, with the
// fake interfaces, so no conductor gives it commands) with a NIC of mac.
func enroll(t *testing.T, st *store.Store, mac net.HardwareAddr) *api.Node {
	t.Helper()
	node := &api.Node{UUID: uuid.NewString(), Driver: "fake-hardware", ProvisionState: "inspect wait",
		TargetProvisionState: "manageable", CreatedAt: time.Now().UTC()}
	if err := st.CreateNode(t.Context(), node, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePort(t.Context(), &api.Port{UUID: uuid.NewString(), Address: mac.String(), NodeUUID: node.UUID,
		PXEEnabled: true, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return node
}

// startCoordinator runs the coordinator binary in the namespace with its
// boot services on the bridge (full DHCP), until stop.
func startCoordinator(t *testing.T, ns *netns.NS, bin, redisURL, dataDir, logFile, vmlinuz, initrd, kernelArgs string) (stop func()) {
	t.Helper()
	logf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(bin, "--listen", "127.0.0.1:16385", "--redis-url", redisURL, "--data-dir", dataDir,
		"--boot-interface", "br0", "--dhcp-range", "192.0.2.100-192.0.2.120",
		"--agent-kernel", vmlinuz, "--agent-initramfs", initrd, "--agent-kernel-args", kernelArgs,
		"--agent-heartbeat-interval", heartbeatInterval.String(), "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			t.Logf("coordinator log (%s):\n%s", logFile, tail(logFile))
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		log := read(t, logFile)
		if strings.Contains(log, "dhcp serving") && strings.Contains(log, "boot http serving") && strings.Contains(log, "agent rpc serving") {
			return stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the coordinator's boot services did not start within 30 s:\n%s", tail(logFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startVM boots a machine from its NIC (QEMU's own iPXE ROM) on tap, with
// a blank virtio disk, its serial console to serial, until stop.
func startVM(t *testing.T, ns *netns.NS, tap string, mac net.HardwareAddr, disk, serial string) (stop func()) {
	t.Helper()
	out, err := os.Create(serial)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command("qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1024",
		"-nographic", "-no-reboot", "-boot", "order=n",
		"-netdev", "tap,id=n0,ifname="+tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+mac.String(),
		"-drive", "file="+disk+",if=virtio,format=raw")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
	}
}

// logDir is where the test keeps its logs and binaries: removed when it
// passes, kept and named when it fails.
func logDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ingot-agentboot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

func read(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func size(file string) string {
	fi, err := os.Stat(file)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(fi.Size())/(1<<20))
}

func slug(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") }
