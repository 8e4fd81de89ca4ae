// Package ipmi is the ipmi hardware type: power and boot device through a
// node's BMC over IPMI v2.0 LAN (RMCP+, "lanplus"), as Ironic's ipmi
// hardware type with its ipmitool power and management interfaces does,
// but speaking the protocol itself (github.com/bougou/go-ipmi) instead of
// running ipmitool for every command.
//
// Commands to one BMC run one at a time on a session kept open between
// them; see pool.
package ipmi

import (
	"context"
	"log/slog"
	"maps"
	"time"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/fake"
)

// Name is the hardware type's name, as in Ironic.
const Name = "ipmi"

// Interface names, as in Ironic.
const (
	PowerInterface      = "ipmitool"
	ManagementInterface = "ipmitool"
)

// Defaults of Config.
const (
	DefaultCommandTimeout = 5 * time.Second
	DefaultRetries        = 2
	DefaultRetryBackoff   = 250 * time.Millisecond
	DefaultPollInterval   = 250 * time.Millisecond
	// DefaultPowerTimeout bounds a power change when the caller gives no
	// timeout.
	DefaultPowerTimeout = 60 * time.Second
)

// Config tunes the driver. The zero value is usable.
type Config struct {
	// CommandTimeout bounds one attempt of a command: logging in if no
	// session is open, sending and resending it, waiting for the answer.
	// Default 5 s.
	CommandTimeout time.Duration
	// Retries is how many more attempts a command gets, on a fresh
	// session, after its transport fails (no answer, refused, garbled).
	// Refused logins and completion codes are never retried. 0 means the
	// default (2); negative means none.
	Retries int
	// RetryBackoff is the pause before the first retry, doubled for each
	// further one. Default 250 ms.
	RetryBackoff time.Duration
	// PollInterval is how often the power state is read while waiting for
	// a change to show. Default 250 ms.
	PollInterval time.Duration
	// Logger gets debug lines per session and warnings per retry; never
	// credentials. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Driver is the ipmitool power and management interfaces and the
// sessions they keep open. Close it on shutdown.
type Driver struct {
	cfg  Config
	pool *pool
}

// NewDriver returns a driver with cfg (zero fields take the defaults).
func NewDriver(cfg Config) *Driver {
	cfg = cfg.withDefaults()
	return newDriver(cfg, dialLanplus(cfg.CommandTimeout))
}

func newDriver(cfg Config, dial dialer) *Driver {
	cfg = cfg.withDefaults()
	return &Driver{cfg: cfg, pool: newPool(dial, cfg)}
}

// New returns the ipmi hardware type on a new Driver; its sessions close
// when they idle. Use NewDriver to close them all on shutdown.
func New(cfg Config) *driver.Hardware { return NewDriver(cfg).Hardware() }

// Close logs out of every BMC with a session open, waiting for commands
// in flight unless ctx ends first. Commands after Close fail.
func (d *Driver) Close(ctx context.Context) error { return d.pool.close(ctx) }

// Hardware returns the ipmi hardware type built on d.
func (d *Driver) Hardware() *driver.Hardware {
	defaults := map[string]string{
		"power_interface":      PowerInterface,
		"management_interface": ManagementInterface,
		// The fake deploy and inspect interfaces stand in until the
		// agent-based "direct" deploy (and inspection) lands; then
		// "direct" becomes the default, as in Ironic.
		"deploy_interface":  "fake",
		"inspect_interface": "fake",
		// Only names for now: nothing serves iPXE yet.
		"boot_interface":    "ipxe",
		"network_interface": "noop",
		"storage_interface": "noop",
	}
	others := map[string][]string{
		"boot_interface":    {"fake", "ipxe"},
		"inspect_interface": {"no-inspect"},
		"network_interface": {"noop"},
		"storage_interface": {"noop"},
	}
	for _, f := range []string{"bios", "console", "raid", "rescue", "vendor"} {
		defaults[f+"_interface"] = "no-" + f
		others[f+"_interface"] = []string{"no-" + f}
	}
	return &driver.Hardware{
		Name:       Name,
		Defaults:   defaults,
		Others:     others,
		Properties: maps.Clone(properties),
		Power:      map[string]driver.Power{PowerInterface: power{d}},
		Management: map[string]driver.Management{ManagementInterface: management{d}},
		Deploy:     map[string]driver.Deploy{"fake": fake.Deploy{}},
		Inspect:    map[string]driver.Inspect{"fake": fake.Inspect{}},
	}
}
