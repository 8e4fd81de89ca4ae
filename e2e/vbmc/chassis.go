package vbmc

import (
	"context"
	"errors"
)

// Chassis Control sub-functions (table 28-4).
const (
	chassisPowerDown  = 0x00
	chassisPowerUp    = 0x01
	chassisPowerCycle = 0x02
	chassisHardReset  = 0x03
	chassisDiagIntr   = 0x04
	chassisSoftOff    = 0x05
)

// System boot option parameters (table 28-14).
const (
	bootParamSetInProgress = 0x00
	bootParamValidBitClear = 0x03
	bootParamInfoAck       = 0x04
	bootParamBootFlags     = 0x05
	bootParamVersion       = 0x01
)

// bootOptions is what the BMC keeps of the boot option parameters itself;
// the boot device, persistence and EFI bits of the boot flags live in the
// Machine, which alone knows when a boot consumes a one-time setting.
type bootOptions struct {
	setInProgress uint8
	validBitClear uint8
	infoAck       uint8
	// flags holds the boot flag bits the Machine does not model (CMOS
	// clear, lock keyboard, console redirection, ...) so they read back as
	// written.
	flags [5]byte
}

// getChassisStatus reports the power state the Machine reports now.
func (b *BMC) getChassisStatus(ctx context.Context, _ *session, _ []byte) (uint8, []byte) {
	mctx, cancel := b.machineCtx(ctx)
	defer cancel()
	on, err := b.machine.PowerState(mctx)
	if err != nil {
		return b.machineErr("power state", err), nil
	}
	var power, last uint8
	if on {
		power = 0x01 // power restore policy bits 6:5 = 00: stays off after AC loss
	}
	if b.lastOnByIPMI {
		last = 0x10
	}
	// Misc state 0; front panel: no buttons that can be disabled.
	return ccOK, append(b.data, power, last, 0x00, 0x00)
}

func (b *BMC) chassisControl(ctx context.Context, s *session, data []byte) (uint8, []byte) {
	if len(data) != 1 {
		return ccReqDataLenInvalid, nil
	}
	op := data[0] & 0x0f
	if op == chassisDiagIntr {
		return ccSubFunctionDisabled, nil
	}
	if op > chassisSoftOff {
		return ccInvalidDataField, nil
	}
	mctx, cancel := b.machineCtx(ctx)
	defer cancel()
	var (
		err  error
		name string
	)
	switch op {
	case chassisPowerDown:
		name, err = "power off", b.machine.PowerOff(mctx)
	case chassisPowerUp:
		name, err = "power on", b.machine.PowerOn(mctx)
		b.lastOnByIPMI = err == nil
	case chassisPowerCycle:
		name, err = "power cycle", b.machine.Cycle(mctx)
	case chassisHardReset:
		name, err = "hard reset", b.machine.Reset(mctx)
	case chassisSoftOff:
		name, err = "soft off", b.machine.SoftOff(mctx)
	}
	if errors.Is(err, ErrPoweredOff) {
		// What real BMCs answer to a cycle or reset of a machine that is off.
		b.log.Info("chassis control refused: powered off", "op", name, "user", s.rakp.user)
		return ccNotInPresentState, nil
	}
	if err != nil {
		return b.machineErr(name, err), nil
	}
	b.chassisControls.Add(1)
	b.log.Info("chassis control", "op", name, "user", s.rakp.user)
	return ccOK, nil
}

func (b *BMC) setSystemBootOptions(_ context.Context, s *session, data []byte) (uint8, []byte) {
	if len(data) < 1 {
		return ccReqDataLenInvalid, nil
	}
	param, v := data[0]&0x7f, data[1:]
	switch param {
	case bootParamSetInProgress:
		// Kept loose: a second "set in progress" is accepted rather than
		// refused with 0x81, so a client that died mid-update cannot wedge
		// the next one.
		if len(v) != 1 {
			return ccReqDataLenInvalid, nil
		}
		if v[0]&0x03 == 0x03 {
			return ccInvalidDataField, nil
		}
		b.boot.setInProgress = v[0] & 0x03
	case bootParamValidBitClear:
		if len(v) != 1 {
			return ccReqDataLenInvalid, nil
		}
		b.boot.validBitClear = v[0] & 0x1f
	case bootParamInfoAck:
		// Data 1 is a write mask for the acknowledge bits in data 2.
		if len(v) != 2 {
			return ccReqDataLenInvalid, nil
		}
		b.boot.infoAck = b.boot.infoAck&^v[0] | v[1]&v[0]
	case bootParamBootFlags:
		if len(v) != 5 {
			return ccReqDataLenInvalid, nil
		}
		boot := Boot{
			Device:     BootDevice(v[1] >> 2 & 0x0f),
			Persistent: v[0]&0x40 != 0,
			EFI:        v[0]&0x20 != 0,
		}
		if v[0]&0x80 == 0 {
			// Flags marked invalid: no override from now on.
			boot = Boot{Device: BootNone, Persistent: true}
		}
		copy(b.boot.flags[:], v)
		b.machine.SetBoot(boot)
		b.log.Info("boot device set", "device", boot.Device.String(), "persistent", boot.Persistent, "efi", boot.EFI, "user", s.rakp.user)
	default:
		return ccParamNotSupported, nil
	}
	return ccOK, nil
}

func (b *BMC) getSystemBootOptions(_ context.Context, _ *session, data []byte) (uint8, []byte) {
	if len(data) != 3 {
		return ccReqDataLenInvalid, nil
	}
	param := data[0] & 0x7f
	d := append(b.data, bootParamVersion, param)
	switch param {
	case bootParamSetInProgress:
		d = append(d, b.boot.setInProgress)
	case bootParamValidBitClear:
		d = append(d, b.boot.validBitClear)
	case bootParamInfoAck:
		d = append(d, 0x00, b.boot.infoAck)
	case bootParamBootFlags:
		boot := b.machine.Boot()
		f := b.boot.flags
		f[0] &= 0x1f
		if boot.Device != BootNone {
			f[0] |= 0x80
		}
		if boot.Persistent {
			f[0] |= 0x40
		}
		if boot.EFI {
			f[0] |= 0x20
		}
		f[1] = f[1]&^0x3c | uint8(boot.Device&0x0f)<<2
		d = append(d, f[:]...)
	default:
		return ccParamNotSupported, nil
	}
	return ccOK, d
}
