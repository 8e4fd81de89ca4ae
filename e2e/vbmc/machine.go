package vbmc

import (
	"context"
	"errors"
	"fmt"
)

// Machine is what a BMC controls: the chassis power and the boot device of
// one (virtual) server. The BMC calls it from its packet loop, one call at a
// time, so an implementation need not be fast but must not block forever:
// every power method gets a context that bounds it.
//
// Power methods are idempotent where hardware is: PowerOn on a running
// machine and PowerOff or SoftOff on a stopped one succeed and do nothing.
// Reset and Cycle on a machine that is off return ErrPoweredOff, which the
// BMC answers with completion code 0xD5 as real BMCs do.
type Machine interface {
	// PowerState reports whether the machine is powered on.
	PowerState(ctx context.Context) (on bool, err error)
	// PowerOn starts the machine; it boots from Boot().
	PowerOn(ctx context.Context) error
	// PowerOff cuts power at once (no guest shutdown).
	PowerOff(ctx context.Context) error
	// Reset is a hard reset: the machine reboots from Boot() without
	// passing through off.
	Reset(ctx context.Context) error
	// Cycle powers off, then on again.
	Cycle(ctx context.Context) error
	// SoftOff asks the guest to shut down (an ACPI power button press); the
	// machine may stay on if the guest ignores it.
	SoftOff(ctx context.Context) error
	// SetBoot records the boot device for the next boot (b.Persistent
	// false) or for all future boots (true). A one-time setting is used by
	// the next boot only; after it Boot reports the persistent one again.
	SetBoot(b Boot)
	// Boot returns the setting the next boot will use.
	Boot() Boot
}

// ErrPoweredOff is returned by Reset and Cycle when the machine is off.
var ErrPoweredOff = errors.New("vbmc: machine is powered off")

// BootDevice is an IPMI boot device selector: the values are those of the
// boot flags parameter (IPMI v2.0 table 28-14, data 2 bits 5:2), so they
// travel to and from the wire unchanged.
type BootDevice uint8

// Boot device selectors.
const (
	BootNone         BootDevice = 0x00 // no override: the machine's own order
	BootPXE          BootDevice = 0x01
	BootDisk         BootDevice = 0x02
	BootDiskSafe     BootDevice = 0x03
	BootDiagnostic   BootDevice = 0x04
	BootCDROM        BootDevice = 0x05
	BootBIOSSetup    BootDevice = 0x06
	BootRemoteFloppy BootDevice = 0x07
	BootRemoteCDROM  BootDevice = 0x08
	BootRemoteMedia  BootDevice = 0x09
	BootRemoteDisk   BootDevice = 0x0b
	BootFloppy       BootDevice = 0x0f
)

// String returns the name ipmitool's `chassis bootdev` uses for d.
func (d BootDevice) String() string {
	switch d {
	case BootNone:
		return "none"
	case BootPXE:
		return "pxe"
	case BootDisk:
		return "disk"
	case BootDiskSafe:
		return "safe"
	case BootDiagnostic:
		return "diag"
	case BootCDROM:
		return "cdrom"
	case BootBIOSSetup:
		return "bios"
	case BootRemoteFloppy:
		return "remote-floppy"
	case BootRemoteCDROM:
		return "remote-cdrom"
	case BootRemoteMedia:
		return "remote-media"
	case BootRemoteDisk:
		return "remote-disk"
	case BootFloppy:
		return "floppy"
	}
	return fmt.Sprintf("selector-%#x", uint8(d))
}

// Boot is a boot device setting, as the IPMI boot flags carry it.
type Boot struct {
	Device BootDevice
	// Persistent makes the setting apply to all future boots; otherwise it
	// applies to the next boot only.
	Persistent bool
	// EFI asks for a UEFI boot rather than a legacy BIOS one. It is
	// recorded and reported back; QEMU mode boots its SeaBIOS regardless.
	EFI bool
}

// bootState is the one-time/persistent bookkeeping both machines share:
// a one-time setting shadows the persistent one until a boot consumes it.
type bootState struct {
	persistent Boot
	once       *Boot
}

func (s *bootState) set(b Boot) {
	if b.Persistent {
		s.persistent, s.once = b, nil
		return
	}
	s.once = &b
}

func (s *bootState) next() Boot {
	if s.once != nil {
		return *s.once
	}
	return s.persistent
}

// consume returns the setting a boot happening now uses and drops a
// one-time setting.
func (s *bootState) consume() Boot {
	b := s.next()
	s.once = nil
	return b
}
