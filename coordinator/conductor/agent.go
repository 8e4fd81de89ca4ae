package conductor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ingot/ingot/coordinator/driver"
	agentdrv "github.com/ingot/ingot/coordinator/driver/agent"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
	"github.com/ingot/ingot/proto/agentpb"
)

// ActionAgent is the job an agent's call asks for: look at what the
// node's agent reported and hand it its next command, or finish the
// operation.
const ActionAgent = "agent"

// Keys of driver_internal_info that track an agent operation. The step
// and the id of the command issued for it are recorded before the command
// is queued, and a command counts as the step's only while its id matches,
// so a crash between the two never runs a step twice or skips one.
const (
	stepKey    = "agent_step"
	commandKey = "agent_command_id"
	timingsKey = "agent_timings"
)

// agentSteps is implemented by deploy and inspect interfaces whose work
// the node's agent does.
type agentSteps interface {
	Steps(n *api.Node) ([]agentdrv.Command, error)
}

// agentJobTTL bounds how long a queued agent job silences further ones.
const agentJobTTL = 30 * time.Second

// AgentCalled is told by the agent service that node's agent called with
// news: it looked the node up, finished a command, or has nothing to do.
// At most one such job per node waits in the queue.
func (c *Conductor) AgentCalled(ctx context.Context, node string) {
	if _, err := c.store.EnqueueAgentJob(ctx, node, &store.Job{Action: ActionAgent}, agentJobTTL); err != nil {
		c.log.Warn("enqueue agent job", "node", node, "err", err)
	}
}

// stepsFor returns who lists the agent commands of the operation the node
// waits in, or nil if its interfaces do not use an agent.
func stepsFor(w *work) agentSteps {
	ifs := w.ifs()
	var impl any
	switch sm.State(w.node.ProvisionState) {
	case sm.DeployWait, sm.CleanWait:
		impl = ifs.Deploy
	case sm.InspectWait:
		impl = ifs.Inspect
	}
	s, _ := impl.(agentSteps)
	return s
}

// agentCalled advances the node's agent operation by what its agent
// reported.
func (c *Conductor) agentCalled(ctx context.Context, w *work) error {
	n := w.node
	steps := stepsFor(w)
	if steps == nil {
		return nil
	}
	// From here, a new report deserves a new job.
	if err := c.store.AgentJobStarted(ctx, n.UUID); err != nil {
		return err
	}
	sess, found, err := c.store.AgentSessionOf(ctx, n.UUID)
	if err != nil || !found {
		return err // no agent (any more): the wait state's timeout applies
	}
	list, err := steps.Steps(n)
	if err != nil {
		return c.agentFail(ctx, w, err.Error())
	}
	step := int(agentdrv.Number(n.DriverInternalInfo[stepKey]))
	issued, _ := n.DriverInternalInfo[commandKey].(string)
	if _, ok := n.DriverInternalInfo[timingsKey].(map[string]any)["agent_lookup"]; !ok {
		c.timing(n, "agent_lookup", sess.LastHeartbeat)
	}

	var queued agentpb.Command
	if err := proto.Unmarshal(sess.Command, &queued); err != nil {
		return fmt.Errorf("node %s: queued agent command: %w", n.UUID, err)
	}
	if issued != "" && queued.GetId() == issued && step < len(list) {
		var st agentpb.CommandStatus
		if err := proto.Unmarshal(sess.Status, &st); err != nil {
			return fmt.Errorf("node %s: agent status: %w", n.UUID, err)
		}
		if st.GetCommandId() != issued {
			return nil // not started yet
		}
		switch st.GetState() {
		case agentpb.CommandStatus_FAILED:
			return c.agentFail(ctx, w, fmt.Sprintf("Agent step %s failed: %s", list[step].Name, st.GetError()))
		case agentpb.CommandStatus_SUCCEEDED:
			if err := c.agentResult(ctx, n, &st); err != nil {
				return c.agentFail(ctx, w, err.Error())
			}
			c.log.Info("agent step done", "node", n.UUID, "step", list[step].Name)
			c.timing(n, list[step].Name, time.Now())
			step, issued = step+1, ""
		default:
			return nil // running
		}
	}

	if step < len(list) {
		next := list[step]
		next.Id = fmt.Sprintf("%s-%d-%s", next.Name, step, randomID())
		raw, err := proto.Marshal(next.Command)
		if err != nil {
			return err
		}
		n.DriverInternalInfo = setInternal(n.DriverInternalInfo, stepKey, step)
		n.DriverInternalInfo[commandKey] = next.Id
		if w.node, err = c.save(ctx, w); err != nil {
			return err
		}
		c.log.Info("agent step starts", "node", n.UUID, "step", next.Name, "command_id", next.Id)
		return c.store.SetAgentCommand(ctx, n.UUID, raw)
	}

	// Every step is done: leave the ramdisk.
	if err := c.leaveAgent(ctx, w); err != nil {
		return c.agentFail(ctx, w, err.Error())
	}
	delete(w.node.DriverInternalInfo, stepKey)
	delete(w.node.DriverInternalInfo, commandKey)
	_, err = c.finish(ctx, w, sm.Done, "")
	return err
}

// agentResult records what a finished command produced.
func (c *Conductor) agentResult(ctx context.Context, n *api.Node, st *agentpb.CommandStatus) error {
	inv := st.GetInventory()
	if inv == nil {
		return nil
	}
	raw, err := protojson.Marshal(inv)
	if err != nil {
		return err
	}
	if err := c.store.SetNodeInventory(ctx, n.UUID, raw); err != nil {
		return err
	}
	if n.Properties == nil {
		n.Properties = map[string]any{}
	}
	for k, v := range inspectedProperties(inv) {
		n.Properties[k] = v
	}
	return nil
}

// inspectedProperties are the scheduling properties Ironic's inspection
// sets from an inventory. local_gb is the root disk's size less 1 GiB,
// which Ironic keeps for partitioning.
func inspectedProperties(inv *agentpb.Inventory) map[string]any {
	p := map[string]any{}
	if c := inv.GetCpu(); c != nil {
		p["cpus"] = int64(c.GetCount())
		if c.GetArchitecture() != "" {
			p["cpu_arch"] = c.GetArchitecture()
		}
	}
	if m := inv.GetMemory(); m != nil {
		mb := m.GetPhysicalMb()
		if mb == 0 {
			mb = m.GetTotalBytes() >> 20
		}
		p["memory_mb"] = int64(mb)
	}
	const minRoot = 4 << 30
	var root uint64
	for _, d := range inv.GetDisks() {
		if s := d.GetSizeBytes(); s >= minRoot && (root == 0 || s < root) {
			root = s
		}
	}
	if root > 0 {
		p["local_gb"] = int64(root>>30) - 1
	}
	if inv.GetBootMode() != "" {
		p["boot_mode"] = inv.GetBootMode()
	}
	return p
}

// bootAgent network-boots the node into the agent: PXE once, then a
// reboot (or power on).
func (c *Conductor) bootAgent(ctx context.Context, w *work) error {
	n := w.node
	ifs := w.ifs()
	n.DriverInternalInfo = setInternal(n.DriverInternalInfo, stepKey, 0)
	delete(n.DriverInternalInfo, commandKey)
	delete(n.DriverInternalInfo, timingsKey)
	if ifs.Management != nil {
		if err := ifs.Management.SetBootDevice(ctx, n, driver.BootDevice{Device: driver.BootPXE}); err != nil {
			return fmt.Errorf("set boot device of node %s to pxe: %w", n.UUID, err)
		}
	}
	if err := c.powerTo(ctx, w, true); err != nil {
		return err
	}
	c.timing(n, "power_on", time.Now())
	return nil
}

// leaveAgent ends the agent's part: a deployed node boots its disk from
// now on; a cleaned or inspected one is switched off.
func (c *Conductor) leaveAgent(ctx context.Context, w *work) error {
	n := w.node
	if sm.State(n.ProvisionState) != sm.DeployWait {
		return c.powerTo(ctx, w, false)
	}
	if m := w.ifs().Management; m != nil {
		if err := m.SetBootDevice(ctx, n, driver.BootDevice{Device: driver.BootDisk, Persistent: true}); err != nil {
			return fmt.Errorf("set boot device of node %s to disk: %w", n.UUID, err)
		}
	}
	if err := c.powerTo(ctx, w, true); err != nil {
		return err
	}
	c.timing(n, "reboot_to_instance", time.Now())
	return nil
}

// powerTo switches the node off, or (re)starts it: a node already on is
// rebooted, so a changed boot device takes effect.
func (c *Conductor) powerTo(ctx context.Context, w *work, on bool) error {
	p := w.ifs().Power
	if p == nil {
		return nil
	}
	n := w.node
	target := api.PowerOff
	if on {
		target = api.PowerOn
		if ps, err := p.PowerState(ctx, n); err == nil && ps == api.PowerOn {
			target = api.Rebooting
		}
	}
	if err := p.SetPowerState(ctx, n, target, c.cfg.PowerTimeout); err != nil {
		return fmt.Errorf("power %s node %s: %w", target, n.UUID, err)
	}
	n.PowerState = api.PowerOff
	if on {
		n.PowerState = api.PowerOn
	}
	return nil
}

// agentFail fails the node's operation with msg, switching the node off
// as Ironic does, so a failed node does not sit in the ramdisk.
func (c *Conductor) agentFail(ctx context.Context, w *work, msg string) error {
	if err := c.powerTo(ctx, w, false); err != nil {
		c.log.Warn("power off failed node", "node", w.node.UUID, "err", err)
	}
	delete(w.node.DriverInternalInfo, commandKey)
	_, err := c.finish(ctx, w, sm.Fail, msg)
	if err == nil {
		c.log.Warn("agent operation failed", "node", w.node.UUID, "last_error", msg)
	}
	return err
}

// timing records when a phase of the operation ended, for operators and
// the benchmarks: driver_internal_info.agent_timings.<phase>.
func (c *Conductor) timing(n *api.Node, phase string, at time.Time) {
	t, _ := n.DriverInternalInfo[timingsKey].(map[string]any)
	if t == nil {
		t = map[string]any{}
		n.DriverInternalInfo = setInternal(n.DriverInternalInfo, timingsKey, t)
	}
	t[phase] = at.UTC().Format(time.RFC3339Nano)
}

// save records the driver's changes to the node without a transition,
// touching provision_updated_at as Ironic's heartbeats do, so a long
// operation that advances is not taken for a stuck one.
func (c *Conductor) save(ctx context.Context, w *work) (*api.Node, error) {
	done := w.node
	return c.store.UpdateNode(context.WithoutCancel(ctx), done.UUID, w.lock.Owner(), func(n *api.Node, _ *store.Effects) error {
		if n.ProvisionState != done.ProvisionState {
			return errors.New("the node changed state meanwhile")
		}
		copyDriverFields(n, done)
		now := time.Now().UTC()
		n.ProvisionUpdatedAt = &now
		return nil
	})
}

// copyDriverFields carries over the fields drivers own. Nobody else
// writes them while the lock is held, so this loses nothing.
func copyDriverFields(dst, src *api.Node) {
	dst.PowerState, dst.Properties, dst.DriverInternalInfo = src.PowerState, src.Properties, src.DriverInternalInfo
	dst.InstanceInfo, dst.BootMode, dst.CleanStep, dst.DeployStep = src.InstanceInfo, src.BootMode, src.CleanStep, src.DeployStep
}

func randomID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
