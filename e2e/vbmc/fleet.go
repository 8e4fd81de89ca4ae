package vbmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// Fleet is many fake-mode BMCs in one process, each on its own UDP port
// with its own FakeMachine: the hardware of a scale test. Each BMC costs
// one socket and one goroutine; an idle BMC costs no CPU.
type Fleet struct {
	bmcs     []*BMC
	machines []*FakeMachine
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// ServeFleet starts n fake-mode BMCs. They listen on tmpl.Addr's host
// (default 127.0.0.1) at ports basePort, basePort+1, ... or, when basePort
// is 0, on ports the system picks. Every BMC shares tmpl's users, logger
// and timeouts; tmpl.Machine must be nil (each gets a new FakeMachine) and
// tmpl.Addr's port is ignored. The fleet runs until ctx is done or Close
// is called; a port that is taken fails the whole call.
func ServeFleet(ctx context.Context, n, basePort int, tmpl Config) (*Fleet, error) {
	if tmpl.Machine != nil {
		return nil, errors.New("vbmc: ServeFleet makes its own machines; leave Config.Machine nil")
	}
	if n <= 0 {
		return nil, fmt.Errorf("vbmc: fleet size %d", n)
	}
	if basePort < 0 || basePort+n-1 > 65535 {
		return nil, fmt.Errorf("vbmc: ports %d..%d out of range", basePort, basePort+n-1)
	}
	host := "127.0.0.1"
	if tmpl.Addr != "" {
		h, _, err := net.SplitHostPort(tmpl.Addr)
		if err != nil {
			return nil, fmt.Errorf("vbmc: fleet address: %w", err)
		}
		host = h
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{cancel: cancel}
	for i := range n {
		port := 0
		if basePort != 0 {
			port = basePort + i
		}
		cfg := tmpl
		cfg.Addr = net.JoinHostPort(host, strconv.Itoa(port))
		m := NewFakeMachine()
		cfg.Machine = m
		b, err := New(cfg)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("vbmc: fleet member %d: %w", i, err)
		}
		f.bmcs = append(f.bmcs, b)
		f.machines = append(f.machines, m)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := b.Serve(ctx); err != nil {
				b.log.Error("serve", "err", err)
			}
		}()
	}
	return f, nil
}

// Len returns the number of BMCs.
func (f *Fleet) Len() int { return len(f.bmcs) }

// BMC returns the ith BMC.
func (f *Fleet) BMC(i int) *BMC { return f.bmcs[i] }

// Machine returns the ith BMC's machine.
func (f *Fleet) Machine(i int) *FakeMachine { return f.machines[i] }

// Addrs returns every BMC's address, in order.
func (f *Fleet) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(f.bmcs))
	for i, b := range f.bmcs {
		out[i] = b.Addr()
	}
	return out
}

// Stats adds up the counters of every BMC; Sessions is the total held now
// and MaxSessions the highest of any one BMC, so MaxSessions > 1 means
// some BMC had two sessions at once.
func (f *Fleet) Stats() Stats {
	var t Stats
	for _, b := range f.bmcs {
		s := b.Stats()
		t.Packets += s.Packets
		t.Commands += s.Commands
		t.SessionsOpened += s.SessionsOpened
		t.AuthFailures += s.AuthFailures
		t.ChassisControls += s.ChassisControls
		t.Sessions += s.Sessions
		t.MaxSessions = max(t.MaxSessions, s.MaxSessions)
	}
	return t
}

// Close stops every BMC and waits for them.
func (f *Fleet) Close() error {
	f.cancel()
	var errs []error
	for _, b := range f.bmcs {
		errs = append(errs, b.Close())
	}
	f.wg.Wait()
	return errors.Join(errs...)
}
