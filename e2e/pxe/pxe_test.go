package pxe

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/e2e/netns"
	"github.com/ingot/ingot/pkg/api"
	"github.com/ingot/ingot/pkg/testlog"
)

const nodeMAC = "52:54:00:12:34:56"

// TestQEMUNetworkBootsFromCoordinator is the network boot path for real: a
// QEMU machine (TCG) on a tap in a namespace, with its NIC's own iPXE ROM,
// gets a lease and its iPXE script from the coordinator binary (full DHCP
// mode on the namespace's bridge), downloads the kernel and initramfs the
// script names over HTTP and boots them; the initramfs prints the kernel
// command line, which must carry the node's UUID and boot MAC.
func TestQEMUNetworkBootsFromCoordinator(t *testing.T) {
	if why := netns.Available(); why != "" {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	needTool(t, "qemu-system-x86_64")
	vmlinuz := kernel(t)
	dir := t.TempDir()
	initrd := buildTestInitramfs(t, dir)
	coordinator := filepath.Join(dir, "coordinator")
	if out, err := exec.Command("go", "build", "-o", coordinator, "../../coordinator").CombinedOutput(); err != nil {
		t.Fatalf("build coordinator: %v\n%s", err, out)
	}

	// The node, in a state that boots the agent, with its NIC enrolled.
	rs := redisproc.StartForTest(t)
	st, err := store.Open(context.Background(), rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	node := &api.Node{UUID: uuid.NewString(), Driver: "fake-hardware", ProvisionState: "wait call-back",
		TargetProvisionState: "active", CreatedAt: time.Now().UTC()}
	if err := st.CreateNode(ctx, node, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePort(ctx, &api.Port{UUID: uuid.NewString(), Address: nodeMAC, NodeUUID: node.UUID, PXEEnabled: true, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	ns := netns.New(t, "ingot-pxe")
	ns.Bridge("br0", "192.0.2.1/24")
	ns.Tap("tap0", "br0")

	coordLog := &testlog.Buffer{}
	coord := ns.Command(coordinator, "--listen", "127.0.0.1:16385", "--redis-url", rs.URL(), "--data-dir", filepath.Join(dir, "data"),
		"--boot-interface", "br0", "--dhcp-range", "192.0.2.100-192.0.2.120",
		"--agent-kernel", vmlinuz, "--agent-initramfs", initrd, "--log-level", "debug")
	coord.Stdout, coord.Stderr = coordLog, coordLog
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		coord.Process.Signal(os.Interrupt)
		coord.Wait()
		if t.Failed() {
			t.Logf("coordinator log:\n%s", tailString(coordLog.String()))
		}
	}()
	waitFor(t, 15*time.Second, "the boot services", func() bool {
		return strings.Contains(coordLog.String(), "dhcp serving") && strings.Contains(coordLog.String(), "boot http serving")
	})

	console := &testlog.Buffer{}
	qctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	qemu := exec.CommandContext(qctx, "ip", "netns", "exec", ns.Name, "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512",
		"-nographic", "-no-reboot", "-boot", "order=n",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac="+nodeMAC)
	qemu.Stdout, qemu.Stderr = console, console
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- qemu.Wait() }()
	select {
	case <-done:
	case <-qctx.Done():
		t.Fatalf("the machine did not boot and power off within 150 s; console:\n%s", tailString(console.String()))
	}
	out := console.String()
	i := strings.Index(out, "INGOT-TESTINIT-BOOTED")
	if i < 0 {
		t.Fatalf("the initramfs never ran; console:\n%s", tailString(out))
	}
	booted := out[i:]
	for _, want := range []string{"ingot.node=" + node.UUID, "ingot.coordinator=192.0.2.1:9443", "ingot.ca=", "BOOTIF=01-52-54-00-12-34-56", "console=ttyS0"} {
		if !strings.Contains(booted, want) {
			t.Errorf("kernel command line lacks %q: %s", want, firstLine(booted))
		}
	}
	mac, _ := net.ParseMAC(nodeMAC)
	ip, _, found, err := st.Lease(ctx, mac)
	if err != nil || !found || !strings.HasPrefix(ip.String(), "192.0.2.1") {
		t.Errorf("lease of the machine: %v found=%v err=%v", ip, found, err)
	}
	t.Logf("booted: %s", firstLine(booted))
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func tailString(s string) string { return tail([]byte(s)) }
