// Package vbmc is a virtual BMC: an IPMI v2.0 RMCP+ ("lanplus") server
// that stands in for a server's baseboard management controller in
// end-to-end tests, the demo and scale tests, as OpenStack's virtualbmc
// does for Ironic, but driving QEMU directly.
//
// A BMC answers real clients (ipmitool 1.8.19, go-ipmi v0.9.1) on one UDP
// socket:
//
//   - RMCP/ASF presence ping;
//   - Get Channel Authentication Capabilities (IPMI v1.5 and v2.0 forms)
//     and Get Channel Cipher Suites outside a session;
//   - Open Session and RAKP 1–4 for cipher suites 17 (HMAC-SHA256,
//     HMAC-SHA256-128, AES-CBC-128) and 3 (HMAC-SHA1, HMAC-SHA1-96,
//     AES-CBC-128), offered in that order; every session message is
//     integrity-checked and encrypted;
//   - Set Session Privilege Level, Close Session, Get Session Info, Get
//     Device ID, Get System GUID;
//   - Get Chassis Status, Chassis Control (power down, up, cycle, hard
//     reset, soft shutdown) and Get/Set System Boot Options (parameters 0,
//     3, 4 and the boot flags, 5);
//   - completion code 0xC1 (invalid command) for anything else.
//
// Behaviour a driver sees, modelled on real BMCs:
//
//   - An unknown user name gets RAKP 2 with status 0x0D (unauthorized
//     name). With a wrong password the console finds RAKP 2's code wrong
//     and gives up; a console that sends RAKP 3 anyway gets RAKP 4 with
//     status 0x0F (invalid integrity check value). Either fails fast.
//   - A session starts at User privilege; Chassis Control and the boot
//     options need Operator, so a client must raise it with Set Session
//     Privilege Level (ipmitool and go-ipmi do). Otherwise: 0xD4.
//   - Power cycle and hard reset of a machine that is off answer 0xD5
//     (not supported in present state). Power on when on, power off or
//     soft off when off succeed and do nothing.
//   - Sessions idle for Config.SessionTimeout (60 s) are forgotten;
//     packets for a forgotten session get no answer, so a client sees a
//     timeout and must open a new session. A session still in RAKP is
//     forgotten after 10 s (a console that found RAKP 2 wrong just leaves).
//     At most 32 sessions are held per BMC: a new one evicts the oldest
//     half-open one, and with all 32 established Open Session answers
//     "insufficient resources".
//   - A retransmitted request gets the cached answer and is not carried
//     out twice: the very same packet (go-ipmi's retry), or a Chassis
//     Control identical to the previous one, requester sequence number
//     included, within 10 s (ipmitool's retry, which takes a new session
//     sequence number). Other repeated commands run again.
//   - Not served: IPMI v1.5 sessions (ipmitool -I lan), Serial over LAN,
//     SDRs, sensors, SEL, FRU, user and LAN configuration.
//   - BMC.SetDown(true) makes the BMC silent and forgets its sessions, as
//     a rebooting BMC would.
//   - The boot flags' one-time setting is used by the next boot (power
//     on, reset or cycle) only; the BMC does not clear the valid bit
//     after 60 s as the spec allows.
//
// Each BMC handles one datagram at a time, in arrival order. The Machine
// behind it is either a FakeMachine (in-memory power and boot device;
// ServeFleet runs thousands of such BMCs in one process) or a QEMUMachine
// (one QEMU process controlled through QMP).
//
// Typical use in a test:
//
//	m := vbmc.NewFakeMachine()
//	b, err := vbmc.New(vbmc.Config{Users: map[string]string{"admin": "pw"}, Machine: m})
//	if err != nil { ... }
//	b.Start(ctx)
//	defer b.Close()
//	// ipmitool -I lanplus -H 127.0.0.1 -p <b.Addr().Port()> -U admin -P pw chassis power on
package vbmc
