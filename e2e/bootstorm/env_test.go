package bootstorm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/boot"
	"github.com/ingot/ingot/coordinator/boot/dhcp"
	"github.com/ingot/ingot/coordinator/boot/httpboot"
	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/e2e/netns"
	"github.com/ingot/ingot/pkg/api"
)

// The link: the coordinator's namespace holds bridge br0 with the server
// address; the clients' namespace holds the far end of one veth pair
// whose near end is a port of br0, so every packet crosses a real L2
// link (veth + bridge), never loopback. Only TEST-NET-1 is used.
const (
	bridge     = "br0"
	serverIP   = "192.0.2.1"
	clientDev  = "bsc"          // the clients' end of the veth pair
	clientCIDR = "192.0.2.2/24" // the clients' HTTP source address
	poolFirst  = "192.0.2.10"
	poolLast   = "192.0.2.250"
	bootPort   = "8080" // httpboot
	staticPort = "8081" // the baseline file server
)

// env is one coordinator's network-boot services, in a namespace, and
// the enrolled machines they serve.
type env struct {
	srv, cli *netns.NS
	store    *store.Store
	macs     []net.HardwareAddr
	nodes    []string // nodes[i] is the node of macs[i]
	fileSize int64
}

// requireToolsEnv turns missing root or tools from a skip into a failure.
const requireToolsEnv = "INGOT_REQUIRE_TOOLS"

func needTools(tb testing.TB) {
	tb.Helper()
	why := netns.Available()
	if why == "" {
		for _, tool := range []string{"curl", "redis-server"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = tool + " is not installed"
				break
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv(requireToolsEnv) != "" {
		tb.Fatalf("%s (and %s is set)", why, requireToolsEnv)
	}
	tb.Skipf("%s (set %s=1 to make this a failure)", why, requireToolsEnv)
}

// newEnv enrolls n machines, writes the initramfs (size bytes) and
// starts DHCP (full mode), httpboot and the static file server inside a
// fresh namespace. Everything is torn down when tb ends, on failure too.
func newEnv(tb testing.TB, n int, size int64) *env {
	tb.Helper()
	needTools(tb)
	ctx := tb.Context()
	e := &env{fileSize: size}
	e.srv = netns.New(tb, "ingot-bs-srv")
	e.cli = netns.New(tb, "ingot-bs-cli")
	e.srv.Bridge(bridge, serverIP+"/24")
	e.srv.IP("link", "add", clientDev, "address", "02:00:00:ff:00:01", "type", "veth", "peer", "name", clientDev+"b")
	e.srv.IP("link", "set", clientDev+"b", "master", bridge, "up")
	e.srv.IP("link", "set", clientDev, "netns", e.cli.Name)
	e.cli.IP("addr", "add", clientCIDR, "dev", clientDev)
	e.cli.IP("link", "set", clientDev, "up")

	redis := redisproc.StartForTest(tb)
	st, err := store.Open(ctx, redis.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	e.store = st
	e.enroll(tb, n)

	dir := tb.TempDir()
	initrd := filepath.Join(dir, "initramfs")
	writeRandom(tb, initrd, size)
	kernel := filepath.Join(dir, "kernel")
	writeRandom(tb, kernel, 1<<20)

	policy := &boot.Policy{Store: st}
	e.serveDHCP(tb, policy)
	hb, err := httpboot.New(httpboot.Config{
		BaseURL:        "http://" + serverIP + ":" + bootPort,
		AgentKernel:    kernel,
		AgentInitramfs: initrd,
		// As the coordinator wires it in full mode: a leased address may
		// fetch only its own MAC's script.
		LeaseOwner: func(ip netip.Addr) (string, bool) {
			mac, found, err := st.LeaseOwner(ctx, ip)
			if err != nil || !found || mac == nil {
				return "", false
			}
			return mac.String(), true
		},
	}, policy)
	if err != nil {
		tb.Fatal(err)
	}
	e.serveHTTP(tb, bootPort, hb)
	e.serveHTTP(tb, staticPort, http.FileServer(http.Dir(dir)))
	return e
}

// enroll stores n nodes in "deploying" (a state the policy boots the
// agent in), each with one PXE-enabled port of its own MAC.
func (e *env) enroll(tb testing.TB, n int) {
	tb.Helper()
	ctx := tb.Context()
	now := time.Now().UTC()
	for i := range n {
		mac := net.HardwareAddr{0x02, 0x00, 0x5e, byte(i >> 16), byte(i >> 8), byte(i)}
		node := &api.Node{UUID: uuid.NewString(), Driver: "fake-hardware", ProvisionState: "deploying", CreatedAt: now}
		if err := e.store.CreateNode(ctx, node, nil); err != nil {
			tb.Fatal(err)
		}
		port := &api.Port{UUID: uuid.NewString(), Address: mac.String(), NodeUUID: node.UUID, PXEEnabled: true, CreatedAt: now}
		if err := e.store.CreatePort(ctx, port); err != nil {
			tb.Fatal(err)
		}
		e.macs = append(e.macs, mac)
		e.nodes = append(e.nodes, node.UUID)
	}
}

// serveDHCP runs the DHCP server in full mode on br0 until tb ends.
func (e *env) serveDHCP(tb testing.TB, policy *boot.Policy) {
	tb.Helper()
	srv, err := dhcp.New(dhcp.Config{
		Interface: bridge,
		Mode:      dhcp.ModeFull,
		ServerIP:  netip.MustParseAddr(serverIP),
		ScriptURL: "http://" + serverIP + ":" + bootPort + "/boot/{mac}.ipxe",
		Pool: dhcp.Pool{
			Start: netip.MustParseAddr(poolFirst), End: netip.MustParseAddr(poolLast),
			PrefixLen: 24, LeaseTime: 10 * time.Minute,
		},
		Logger: serverLog(),
	}, policy, e.store)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Do(func() error { return srv.Serve(ctx) }) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("dhcp Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			tb.Error("dhcp Serve did not return after its context ended")
		}
	})
	// Wait for its socket (port 67 is 0043 in /proc/net/udp), so the
	// first DISCOVER is not lost to a race.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, _ := e.srv.Command("cat", "/proc/net/udp").Output()
		if strings.Contains(string(out), ":0043 ") {
			return
		}
		select {
		case err := <-done:
			tb.Fatalf("dhcp Serve: %v", err)
		default:
		}
	}
	tb.Fatal("the DHCP server's socket never appeared")
}

// serverLog shows the DHCP server's warnings (dropped requests, Redis
// errors) with -test.v, and discards its logs otherwise.
func serverLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// serveHTTP serves h on serverIP:port inside the namespace until tb ends.
func (e *env) serveHTTP(tb testing.TB, port string, h http.Handler) {
	tb.Helper()
	var ln net.Listener
	err := e.srv.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(serverIP, port))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	tb.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("http server on port %s: %v", port, err)
		}
	})
}

// dialer dials from the clients' namespace: sockets belong to the
// namespace of the thread that creates them.
func (e *env) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = e.cli.Do(func() error {
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func writeRandom(tb testing.TB, path string, size int64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	// Incompressible, so nothing on the way can cheat.
	if _, err := io.Copy(f, io.LimitReader(rand.NewChaCha8([32]byte{}), size)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}
