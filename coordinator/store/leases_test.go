package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/store"
)

func mac(t *testing.T, i int) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testPool = store.LeasePool{First: netip.MustParseAddr("192.0.2.10"), Last: netip.MustParseAddr("192.0.2.13")}

func TestAllocateLeaseLowestFreeAndReuse(t *testing.T) {
	st, rdb := newStore(t)
	ctx := context.Background()
	alloc := func(m net.HardwareAddr, want string) netip.Addr {
		t.Helper()
		var w netip.Addr
		if want != "" {
			w = netip.MustParseAddr(want)
		}
		ip, err := st.AllocateLease(ctx, m, testPool, w, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ip
	}
	a, b := mac(t, 1), mac(t, 2)
	if got := alloc(a, ""); got.String() != "192.0.2.10" {
		t.Fatalf("first lease = %s, want 192.0.2.10", got)
	}
	if got := alloc(b, ""); got.String() != "192.0.2.11" {
		t.Fatalf("second lease = %s, want 192.0.2.11", got)
	}
	// The same MAC keeps its address, whatever it asks for.
	if got := alloc(a, "192.0.2.13"); got.String() != "192.0.2.10" {
		t.Fatalf("reused lease = %s, want 192.0.2.10", got)
	}
	// A free wanted address is granted to a MAC with no lease.
	if got := alloc(mac(t, 3), "192.0.2.13"); got.String() != "192.0.2.13" {
		t.Fatalf("wanted lease = %s, want 192.0.2.13", got)
	}
	// A taken wanted address is not: the lowest free one is.
	if got := alloc(mac(t, 4), "192.0.2.10"); got.String() != "192.0.2.12" {
		t.Fatalf("lease = %s, want 192.0.2.12", got)
	}
	_, err := st.AllocateLease(ctx, mac(t, 5), testPool, netip.Addr{}, time.Minute)
	if !errors.Is(err, store.ErrPoolExhausted) {
		t.Fatalf("full pool: err = %v, want ErrPoolExhausted", err)
	}

	ip, exp, found, err := st.Lease(ctx, a)
	if err != nil || !found || ip.String() != "192.0.2.10" {
		t.Fatalf("Lease = %s, %v, %v; want 192.0.2.10", ip, found, err)
	}
	if d := time.Until(exp); d < 50*time.Second || d > time.Minute+time.Second {
		t.Errorf("lease expires in %v, want about a minute", d)
	}
	owner, found, err := st.LeaseOwner(ctx, ip)
	if err != nil || !found || owner.String() != a.String() {
		t.Fatalf("LeaseOwner = %s, %v, %v; want %s", owner, found, err, a)
	}
	// The layout documented in leases.go.
	if v := rdb.Get(ctx, "ingot:lease:ip:192.0.2.11").Val(); v != b.String() {
		t.Errorf("ip key = %q, want %s", v, b)
	}
	if v := rdb.PTTL(ctx, "ingot:lease:mac:"+b.String()).Val(); v <= 0 {
		t.Errorf("mac key PTTL = %v, want an expiry", v)
	}
}

func TestLeaseExpiryAndRelease(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	a, b := mac(t, 1), mac(t, 2)
	ip, err := st.AllocateLease(ctx, a, testPool, netip.Addr{}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	if _, _, found, _ := st.Lease(ctx, a); found {
		t.Fatal("lease still there after its expiry")
	}
	// The expired address is free again: b gets it.
	got, err := st.AllocateLease(ctx, b, testPool, netip.Addr{}, time.Minute)
	if err != nil || got != ip {
		t.Fatalf("after expiry got %s, %v; want %s", got, err, ip)
	}
	// Releasing an address one does not hold changes nothing.
	if err := st.ReleaseLease(ctx, a, got); err != nil {
		t.Fatal(err)
	}
	if owner, found, _ := st.LeaseOwner(ctx, got); !found || owner.String() != b.String() {
		t.Fatalf("foreign release freed the lease: owner %s, %v", owner, found)
	}
	if err := st.ReleaseLease(ctx, b, got); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := st.LeaseOwner(ctx, got); found {
		t.Fatal("released address still owned")
	}
	if _, _, found, _ := st.Lease(ctx, b); found {
		t.Fatal("released lease still there")
	}
}

func TestDeclineLeaseHoldsAddress(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	a := mac(t, 1)
	ip, err := st.AllocateLease(ctx, a, testPool, netip.Addr{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeclineLease(ctx, a, ip, time.Minute); err != nil {
		t.Fatal(err)
	}
	owner, found, err := st.LeaseOwner(ctx, ip)
	if err != nil || !found || owner != nil {
		t.Fatalf("declined address owner = %v, %v, %v; want held by nobody", owner, found, err)
	}
	next, err := st.AllocateLease(ctx, a, testPool, netip.Addr{}, time.Minute)
	if err != nil || next == ip {
		t.Fatalf("after decline got %s, %v; want another address than %s", next, err, ip)
	}
	// Another MAC cannot decline a's address away.
	if err := st.DeclineLease(ctx, mac(t, 2), next, time.Minute); err != nil {
		t.Fatal(err)
	}
	if owner, _, _ := st.LeaseOwner(ctx, next); owner.String() != a.String() {
		t.Fatalf("foreign decline took the address: owner %v", owner)
	}
}

// A MAC's lease outside a reconfigured pool is dropped for one inside it.
func TestAllocateLeasePoolChange(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	a := mac(t, 1)
	if _, err := st.AllocateLease(ctx, a, testPool, netip.Addr{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	other := store.LeasePool{First: netip.MustParseAddr("198.51.100.5"), Last: netip.MustParseAddr("198.51.100.6")}
	ip, err := st.AllocateLease(ctx, a, other, netip.Addr{}, time.Minute)
	if err != nil || ip.String() != "198.51.100.5" {
		t.Fatalf("got %s, %v; want 198.51.100.5", ip, err)
	}
	if _, found, _ := st.LeaseOwner(ctx, netip.MustParseAddr("192.0.2.10")); found {
		t.Error("old address still owned")
	}
	if _, err := st.AllocateLease(ctx, a, store.LeasePool{First: other.Last, Last: other.First}, netip.Addr{}, time.Minute); err == nil {
		t.Error("inverted pool accepted")
	}
}

// Racing allocations never hand one address to two MACs.
func TestAllocateLeaseConcurrent(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	pool := store.LeasePool{First: netip.MustParseAddr("192.0.2.1"), Last: netip.MustParseAddr("192.0.2.40")}
	var mu sync.Mutex
	seen := map[netip.Addr]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		m := mac(t, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip, err := st.AllocateLease(ctx, m, pool, netip.Addr{}, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[ip]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Fatalf("%d distinct addresses for 40 MACs: %v", len(seen), seen)
	}
}
