// Package compat checks that Ingot's coordinator is a drop-in Ironic for the
// clients people actually use: gophercloud v2's baremetal packages (as
// metal3 and Terraform providers do) and the `baremetal` CLI from
// python-ironicclient. Each test starts a real coordinator (real
// redis-server, conductor and REST API) with coordinatortest and drives the
// whole fake-hardware lifecycle through the unmodified client, asserting
// what a user of that client would look at: states, masked secrets,
// normalised MACs, status codes and Ironic's error text.
//
// The package holds only tests. The CLI test skips when `baremetal` is not
// installed unless INGOT_REQUIRE_TOOLS is set; like every Redis-backed test,
// both skip without redis-server unless INGOT_REQUIRE_REDIS is set.
package compat
