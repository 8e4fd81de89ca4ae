package vbmc

import (
	"context"
	"maps"
	"sync"
)

// FakeMachine is an in-memory Machine: power is a boolean and a boot is
// only counted. It is safe for concurrent use, so a test can watch or
// change it (SetPower) while a BMC drives it.
type FakeMachine struct {
	mu       sync.Mutex
	on       bool
	boot     bootState
	boots    int
	lastBoot Boot
	ops      map[string]int
}

// NewFakeMachine returns a machine that is off and has no boot device
// override.
func NewFakeMachine() *FakeMachine {
	return &FakeMachine{ops: map[string]int{}}
}

// PowerState implements Machine.
func (m *FakeMachine) PowerState(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on, nil
}

// PowerOn implements Machine.
func (m *FakeMachine) PowerOn(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["on"]++
	if !m.on {
		m.on = true
		m.bootLocked()
	}
	return nil
}

// PowerOff implements Machine.
func (m *FakeMachine) PowerOff(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["off"]++
	m.on = false
	return nil
}

// Reset implements Machine.
func (m *FakeMachine) Reset(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on {
		return ErrPoweredOff
	}
	m.ops["reset"]++
	m.bootLocked()
	return nil
}

// Cycle implements Machine.
func (m *FakeMachine) Cycle(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on {
		return ErrPoweredOff
	}
	m.ops["cycle"]++
	m.bootLocked()
	return nil
}

// SoftOff implements Machine. The fake guest always honours the request
// at once.
func (m *FakeMachine) SoftOff(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["soft"]++
	m.on = false
	return nil
}

// SetBoot implements Machine.
func (m *FakeMachine) SetBoot(b Boot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boot.set(b)
}

// Boot implements Machine.
func (m *FakeMachine) Boot() Boot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boot.next()
}

// SetPower changes the power state behind the BMC's back, as a guest that
// shuts itself down or a tripped breaker would. Turning power on this way
// counts as a boot.
func (m *FakeMachine) SetPower(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on && !m.on {
		m.bootLocked()
	}
	m.on = on
}

// Boots returns how many times the machine has booted (power on, reset and
// cycle each count one) and the setting the last boot used.
func (m *FakeMachine) Boots() (n int, last Boot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boots, m.lastBoot
}

// Ops returns how many times each power operation was requested, keyed
// "on", "off", "reset", "cycle" and "soft"; Reset and Cycle refused because
// the machine was off are not counted.
func (m *FakeMachine) Ops() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.ops)
}

func (m *FakeMachine) bootLocked() {
	m.boots++
	m.lastBoot = m.boot.consume()
}
