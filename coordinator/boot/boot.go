// Package boot is the network-boot policy: from a machine's MAC address
// and its node's state in Redis it decides whether Ingot answers the
// machine at all and what it boots. The protocol servers (DHCP, TFTP,
// HTTP) ask it and know nothing of nodes, as pixiecore's Booter keeps boot
// policy out of its protocol code. It never takes node locks: it only
// reads.
package boot

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// Action is what a network-booting machine should do.
type Action int

const (
	// Ignore: not a machine Ingot boots now; stay silent, so Ingot never
	// hijacks machines it does not manage.
	Ignore Action = iota
	// Agent: boot the agent ramdisk.
	Agent
	// LocalDisk: boot from the local disk (an active node that
	// network-boots anyway).
	LocalDisk
)

func (a Action) String() string {
	switch a {
	case Agent:
		return "agent"
	case LocalDisk:
		return "local disk"
	}
	return "ignore"
}

// Decision is what one MAC boots, and for which node ("" when an unknown
// machine boots the agent for discovery).
type Decision struct {
	Action Action
	Node   string
}

// Policy decides from the node records in Redis.
type Policy struct {
	Store *store.Store
	// Discovery boots the agent on unknown MACs too, so they can enrol
	// themselves.
	Discovery bool
}

// Decide returns what mac should boot.
func (p *Policy) Decide(ctx context.Context, mac net.HardwareAddr) (Decision, error) {
	n, pxe, err := p.Store.NodeByMAC(ctx, mac.String())
	if errors.Is(err, store.ErrNotFound) {
		if p.Discovery {
			return Decision{Action: Agent}, nil
		}
		return Decision{}, nil
	}
	if err != nil {
		return Decision{}, fmt.Errorf("boot decision for %s: %w", mac, err)
	}
	if !pxe {
		return Decision{}, nil
	}
	return decide(n), nil
}

// decide is the policy proper, apart from where nodes come from.
func decide(n *api.Node) Decision {
	switch {
	case n.Maintenance:
		// An operator is looking at it: boot nothing of ours.
		return Decision{}
	case sm.State(n.ProvisionState).BootsAgent():
		return Decision{Action: Agent, Node: n.UUID}
	case n.ProvisionState == string(sm.Active):
		return Decision{Action: LocalDisk, Node: n.UUID}
	}
	return Decision{}
}
