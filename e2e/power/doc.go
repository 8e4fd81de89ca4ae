// Package power checks the ipmi hardware type end to end: nodes enrolled
// through the REST API (and the baremetal CLI) with the ipmi driver,
// pointing at virtual BMCs from e2e/vbmc over real UDP, managed, powered
// and given boot devices, with ipmitool as the independent witness of what
// the BMC holds. It also boots a real QEMU through the driver, and
// benchmarks one coordinator's power sync over a fleet of 1,000 BMCs.
package power
