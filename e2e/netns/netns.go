// Package netns makes throwaway network namespaces for tests that need a
// real L2 network (DHCP, PXE) without touching the host's interfaces: a
// namespace holding a bridge with a TEST-NET address and tap devices for
// virtual machines, removed when the test ends, on failure too.
package netns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is a network namespace made by New.
type NS struct {
	Name string
	t    testing.TB
}

// Available reports why namespaces cannot be made here ("" if they can):
// they need root and iproute2.
func Available() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "iproute2 (ip) is not installed"
	}
	return ""
}

// New makes a namespace with loopback up, removed when t ends. The name
// carries the process id so parallel runs never collide.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	ns := &NS{Name: fmt.Sprintf("%s-%d", prefix, os.Getpid()), t: t}
	exec.Command("ip", "netns", "del", ns.Name).Run() // a leftover of a killed run
	ns.mustIP("netns", "add", ns.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Logf("remove namespace %s: %v %s", ns.Name, err, out)
		}
	})
	ns.mustIP("-n", ns.Name, "link", "set", "lo", "up")
	return ns
}

func (ns *NS) mustIP(args ...string) {
	ns.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		ns.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// IP runs `ip -n <ns> args...`.
func (ns *NS) IP(args ...string) {
	ns.t.Helper()
	ns.mustIP(append([]string{"-n", ns.Name}, args...)...)
}

// Bridge adds a bridge with address cidr (e.g. 192.0.2.1/24) and no
// forwarding delay, so DHCP works the moment a port joins.
func (ns *NS) Bridge(name, cidr string) {
	ns.t.Helper()
	ns.IP("link", "add", name, "type", "bridge")
	ns.IP("link", "set", name, "type", "bridge", "forward_delay", "0")
	ns.IP("addr", "add", cidr, "dev", name)
	ns.IP("link", "set", name, "up")
}

// Tap adds a tap device for a virtual machine's NIC, on bridge.
func (ns *NS) Tap(name, bridge string) {
	ns.t.Helper()
	ns.IP("tuntap", "add", "dev", name, "mode", "tap")
	ns.IP("link", "set", name, "master", bridge, "up")
}

// Veth links the host to the namespace with a veth pair: host (a name
// unique on the host) gets hostCIDR, inner (inside the namespace) gets
// nsCIDR. Use TEST-NET addresses (198.51.100.0/24). The pair goes away
// with the namespace.
func (ns *NS) Veth(host, hostCIDR, inner, nsCIDR string) {
	ns.t.Helper()
	exec.Command("ip", "link", "del", host).Run() // a leftover of a killed run
	// A dead namespace can outlive its name for a while (the kernel frees
	// it lazily), with its veth and address still on the host: two links
	// with hostCIDR would misroute. Remove such leftovers of ours.
	if out, err := exec.Command("ip", "-o", "addr", "show", "to", hostCIDR).Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				name, _, _ := strings.Cut(f[1], "@")
				if strings.HasPrefix(name, "ingot") {
					exec.Command("ip", "link", "del", name).Run()
				}
			}
		}
	}
	ns.mustIP("link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns.Name)
	ns.t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	ns.mustIP("addr", "add", hostCIDR, "dev", host)
	ns.mustIP("link", "set", host, "up")
	ns.IP("addr", "add", nsCIDR, "dev", inner)
	ns.IP("link", "set", inner, "up")
}

// Command returns cmd to run inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace: sockets fn
// opens belong to the namespace and stay there after Do returns, which is
// how servers of this process listen inside it.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked if switching back fails: Go then
		// ends it with the goroutine instead of reusing a thread in the
		// wrong namespace.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns.Name)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave namespace %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
