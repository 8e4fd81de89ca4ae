package main

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
)

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "-m 128  -nodefaults", want: []string{"-m", "128", "-nodefaults"}},
		{in: `-append 'console=ttyS0 quiet' -name "node 1"`, want: []string{"-append", "console=ttyS0 quiet", "-name", "node 1"}},
		{in: `-drive file=a\ b.raw,if=virtio ''`, want: []string{"-drive", "file=a b.raw,if=virtio", ""}},
		{in: `-x 'open`, wantErr: true},
		{in: `-x \`, wantErr: true},
	} {
		got, err := splitArgs(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	t.Setenv("VBMC_LISTEN", "127.0.0.1:7000")
	t.Setenv("VBMC_PASSWORD", "from-env")
	o, err := parse([]string{"--password", "from-flag", "--fleet", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:7000" || o.password != "from-flag" || o.fleet != 3 || o.user != "admin" {
		t.Errorf("options %+v", o)
	}
	for _, args := range [][]string{
		{"--fake", "--qemu-args", "-m 1"},
		{"--fleet", "2", "--qemu-args", "-m 1"},
		{"stray"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("parse(%q) accepted it", args)
		}
	}
}

// TestRunFleet runs the program's fleet mode and powers a node on through
// the address it printed.
func TestRunFleet(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--fleet", "4", "--user", "u", "--password", "p", "--log-level", "warn"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addrs []netip.AddrPort
	for len(addrs) < 4 && sc.Scan() {
		a, err := netip.ParseAddrPort(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) != 4 {
		t.Fatalf("printed %v", addrs)
	}
	go io.Copy(io.Discard, pr)

	c, err := client.NewClient(addrs[2].Addr().String(), int(addrs[2].Port()), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithInterface(client.InterfaceLanplus).WithTimeout(time.Second).WithRetry(1)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerUp); err != nil {
		t.Fatal(err)
	}
	if st, err := c.GetChassisStatus(ctx); err != nil || !st.PowerIsOn {
		t.Errorf("status %+v, %v", st, err)
	}
	c.Close(ctx)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
