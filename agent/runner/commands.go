package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/ingot/ingot/agent/disk"
	"github.com/ingot/ingot/agent/imagewrite"
	"github.com/ingot/ingot/agent/inventory"
	"github.com/ingot/ingot/proto/agentpb"
)

// errNotSupported is the honest answer to a command this agent cannot do
// yet.
var errNotSupported = errors.New("not supported yet by this agent")

// start runs cmd in its own goroutine unless a command is running already
// or cmd was the last one run (see tracker.begin). wg tracks it so a
// session never ends, nor another starts, under a running command.
func (r *Runner) start(ctx context.Context, cmd *agentpb.Command) {
	if cmd.GetId() == "" || !r.track.begin(cmd.GetId()) {
		return
	}
	log := r.log.With("command_id", cmd.GetId(), "command", kindName(cmd))
	log.InfoContext(ctx, "command started")
	r.cmds.Add(1)
	go func() {
		defer r.cmds.Done()
		result, after, err := r.execute(ctx, cmd)
		if err != nil {
			log.ErrorContext(ctx, "command failed", "err", err)
		} else {
			log.InfoContext(ctx, "command succeeded")
		}
		r.track.finish(err, result, after)
	}()
}

// execute runs one command. result, if not nil, fills the finished
// status's result; after, if not nil, runs once the coordinator has been
// told the command succeeded.
func (r *Runner) execute(ctx context.Context, cmd *agentpb.Command) (result func(*agentpb.CommandStatus), after func(), err error) {
	switch k := cmd.GetKind().(type) {
	case *agentpb.Command_GetInventory:
		inv, err := inventory.Collect(r.cfg.Root)
		if err != nil {
			return nil, nil, fmt.Errorf("collect inventory: %w", err)
		}
		return func(st *agentpb.CommandStatus) { st.Result = &agentpb.CommandStatus_Inventory{Inventory: inv} }, nil, nil
	case *agentpb.Command_EraseMetadata:
		return nil, nil, r.eraseMetadata(ctx, k.EraseMetadata.GetDisks())
	case *agentpb.Command_FullErase:
		return nil, nil, r.fullErase(ctx, k.FullErase.GetDisks())
	case *agentpb.Command_WriteImage:
		return nil, nil, r.writeImage(ctx, k.WriteImage)
	case *agentpb.Command_InstallConfigDrive:
		return nil, nil, r.installConfigDrive(ctx, k.InstallConfigDrive)
	case *agentpb.Command_CollectLogs:
		logs, err := r.logs.tarGz("ingot-agent.log", r.cfg.now())
		if err != nil {
			return nil, nil, err
		}
		return func(st *agentpb.CommandStatus) { st.Result = &agentpb.CommandStatus_Logs{Logs: logs} }, nil, nil
	case *agentpb.Command_Reboot:
		return nil, r.rebootAfterReport(ctx, false), nil
	case *agentpb.Command_PowerOff:
		return nil, r.rebootAfterReport(ctx, true), nil
	default:
		// A newer coordinator's command: say so rather than ignore it.
		return nil, nil, fmt.Errorf("command of unknown kind %T: %w", k, errNotSupported)
	}
}

// rebootAfterReport returns the action that reboots (or powers off) the
// node; it runs only after the heartbeat reporting SUCCEEDED went through,
// since afterwards nobody is left to report anything.
func (r *Runner) rebootAfterReport(ctx context.Context, poweroff bool) func() {
	return func() {
		r.log.InfoContext(ctx, "rebooting", "poweroff", poweroff)
		if err := r.cfg.Reboot(ctx, poweroff); err != nil {
			// The coordinator was told it happened; it will notice that it
			// did not when the node keeps heartbeating, and the log says why.
			r.log.ErrorContext(ctx, "reboot failed", "poweroff", poweroff, "err", err)
		}
	}
}

// disks returns the inventory's disks that names picks ("vda" or
// "/dev/vda"), or all of them when names is empty. A name not in the
// inventory is an error: a command must never reach an arbitrary path.
func (r *Runner) disks(names []string) ([]*agentpb.Disk, error) {
	inv, err := inventory.Collect(r.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("collect inventory: %w", err)
	}
	if len(names) == 0 {
		if len(inv.GetDisks()) == 0 {
			return nil, errors.New("the inventory lists no disks")
		}
		return inv.GetDisks(), nil
	}
	byName := make(map[string]*agentpb.Disk, len(inv.GetDisks()))
	for _, d := range inv.GetDisks() {
		byName[d.GetName()] = d
	}
	var out []*agentpb.Disk
	for _, n := range names {
		if !strings.HasPrefix(n, "/dev/") {
			n = "/dev/" + n
		}
		d, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("disk %s is not in the inventory", n)
		}
		out = append(out, d)
	}
	return out, nil
}

// devPath maps an inventory disk name (/dev/vda) to the file to open:
// under DevRoot, so tests can stand a regular file in for the disk.
func (r *Runner) devPath(d *agentpb.Disk) string {
	return filepath.Join(r.cfg.DevRoot, d.GetName())
}

func (r *Runner) eraseMetadata(ctx context.Context, names []string) error {
	disks, err := r.disks(names)
	if err != nil {
		return err
	}
	for i, d := range disks {
		r.track.progress(&agentpb.Progress{Phase: fmt.Sprintf("erase metadata %s (%d/%d)", d.GetName(), i+1, len(disks))})
		if err := disk.EraseMetadata(ctx, r.devPath(d)); err != nil {
			return fmt.Errorf("erase metadata of %s: %w", d.GetName(), err)
		}
	}
	return nil
}

func (r *Runner) fullErase(ctx context.Context, names []string) error {
	disks, err := r.disks(names)
	if err != nil {
		return err
	}
	for i, d := range disks {
		phase := fmt.Sprintf("erase %s (%d/%d)", d.GetName(), i+1, len(disks))
		err := disk.FullErase(ctx, r.devPath(d), func(done, total int64) {
			r.track.progress(&agentpb.Progress{Phase: phase, BytesDone: uint64(done), BytesTotal: uint64(total)})
		})
		if err != nil {
			return fmt.Errorf("full erase of %s: %w", d.GetName(), err)
		}
	}
	return nil
}

// rootDisk is the disk the root device hints pick. The image and its
// config drive are sent the same hints and both go through here, so they
// land on the same disk. The inventory it read comes back too.
func (r *Runner) rootDisk(hints *agentpb.RootDeviceHints) (*agentpb.Disk, *agentpb.Inventory, error) {
	inv, err := inventory.Collect(r.cfg.Root)
	if err != nil {
		return nil, nil, fmt.Errorf("collect inventory: %w", err)
	}
	target, err := disk.Match(inv.GetDisks(), hints.GetHints())
	if err != nil {
		return nil, nil, fmt.Errorf("choose the target disk: %w", err)
	}
	return target, inv, nil
}

func (r *Runner) writeImage(ctx context.Context, w *agentpb.WriteImage) error {
	target, inv, err := r.rootDisk(w.GetRootDevice())
	if err != nil {
		return err
	}
	dev := r.devPath(target)
	// A partition image goes into the root partition of a new GPT, with
	// room left at the end for the config drive installed next.
	var offset, limit int64
	if l := w.GetPartitionLayout(); l != nil {
		r.track.progress(&agentpb.Progress{Phase: phasePartition})
		parts, err := disk.CreatePartitions(ctx, dev, disk.PartitionLayout{
			RootMiB: l.GetRootMib(), EFISystemPartition: l.GetEfiSystemPartition(), EFIMiB: l.GetEfiMib(),
		})
		if err != nil {
			return fmt.Errorf("write image to %s: %w", target.GetName(), err)
		}
		offset, limit = parts.Root.Start, parts.Root.Size
		r.log.InfoContext(ctx, "partitions created", "target", target.GetName(),
			"root_partition", parts.Root.Number, "root_bytes", parts.Root.Size,
			"efi_system_partition", parts.EFI.Number, "efi_bytes", parts.EFI.Size)
	}
	// imagewrite reports after each buffer written, which on a slow link
	// can take a while: say at once what is being done and how much.
	r.track.progress(&agentpb.Progress{Phase: imagewrite.PhaseWrite, BytesTotal: w.GetSizeBytes()})
	algo, sum := pickDigest(w, inventory.Emulated(inv.GetCpu()))
	r.log.InfoContext(ctx, "writing image", "url", w.GetUrl(), "format", w.GetFormat(), "target", target.GetName(),
		"offset", offset, "verify", algo)
	res, err := imagewrite.Write(ctx, imagewrite.Config{
		URL:       w.GetUrl(),
		Format:    w.GetFormat(),
		Algorithm: algo,
		Checksum:  sum,
		Size:      int64(w.GetSizeBytes()),
		Target:    dev,
		Offset:    offset,
		Limit:     limit,
		Client:    r.cfg.HTTPClient,
		Retries:   5,
		Progress: func(p imagewrite.Progress) {
			r.track.progress(&agentpb.Progress{Phase: p.Phase, BytesDone: uint64(p.Done),
				BytesTotal: uint64(p.Total), BytesPerSecond: p.BytesPerSecond})
		},
	})
	if err != nil {
		return fmt.Errorf("write image to %s: %w", target.GetName(), err)
	}
	r.log.InfoContext(ctx, "image written", "target", target.GetName(), "bytes", res.Written+res.Skipped,
		"digest", res.Digest, "duration", res.Duration, "direct_io", res.Direct)
	return nil
}

// phasePartition is the progress phase while a partition image's
// partitions are created.
const phasePartition = "partition"

// maxConfigDrive is Ironic's limit on a config drive: what the
// coordinator sends or a URL serves is held in memory, so it is enforced
// before reading more.
const maxConfigDrive = 64 << 20

// phaseConfigDrive is the progress phase while a config drive is fetched
// and written: it is small, so there is no byte count worth reporting.
const phaseConfigDrive = "config drive"

func (r *Runner) installConfigDrive(ctx context.Context, c *agentpb.InstallConfigDrive) error {
	target, _, err := r.rootDisk(c.GetRootDevice())
	if err != nil {
		return fmt.Errorf("install config drive: %w", err)
	}
	r.track.progress(&agentpb.Progress{Phase: phaseConfigDrive})
	var iso []byte
	switch src := c.GetSource().(type) {
	case *agentpb.InstallConfigDrive_Iso:
		iso = src.Iso
	case *agentpb.InstallConfigDrive_Url:
		if iso, err = r.downloadConfigDrive(ctx, src.Url); err != nil {
			return fmt.Errorf("install config drive: %w", err)
		}
	default:
		return errors.New("install config drive: the command carries neither an ISO nor a URL")
	}
	if len(iso) > maxConfigDrive {
		return fmt.Errorf("install config drive: the config drive is %d bytes, larger than %d MiB", len(iso), maxConfigDrive>>20)
	}
	// disk.InstallConfigDrive's errors name the disk already.
	part, err := disk.InstallConfigDrive(ctx, r.devPath(target), bytes.NewReader(iso), int64(len(iso)))
	if err != nil {
		return err
	}
	r.log.InfoContext(ctx, "config drive installed", "target", target.GetName(), "partition", part, "bytes", len(iso))
	return nil
}

// downloadConfigDrive fetches a config drive: the ISO itself, as Ironic's
// agent takes it from a URL (not base64, not gzip'd).
func (r *Runner) downloadConfigDrive(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("config drive URL %q: %w", url, err)
	}
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download the config drive: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download the config drive: GET %s: HTTP %s", url, resp.Status)
	}
	if resp.ContentLength > maxConfigDrive {
		return nil, fmt.Errorf("download the config drive: GET %s: %d bytes, larger than %d MiB", url, resp.ContentLength, maxConfigDrive>>20)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigDrive+1))
	if err != nil {
		return nil, fmt.Errorf("download the config drive: GET %s: %w", url, err)
	}
	if len(b) > maxConfigDrive {
		return nil, fmt.Errorf("download the config drive: GET %s: larger than %d MiB", url, maxConfigDrive>>20)
	}
	return b, nil
}

// pickDigest chooses the digest to verify an image with: sha512 in an
// emulated CPU, where it runs ~2x faster than sha256 (with the agent's
// GODEBUG=cpu.avx2=off, see agent/main.go), else the coordinator's choice.
func pickDigest(w *agentpb.WriteImage, emulated bool) (algo, sum string) {
	if s := w.GetChecksums()["sha512"]; emulated && s != "" {
		return "sha512", s
	}
	if w.GetChecksum() != "" {
		return w.GetChecksumAlgorithm(), w.GetChecksum()
	}
	for _, a := range []string{"sha256", "sha512"} {
		if s := w.GetChecksums()[a]; s != "" {
			return a, s
		}
	}
	return w.GetChecksumAlgorithm(), w.GetChecksum()
}

// kindName names a command for the log: "write_image".
func kindName(cmd *agentpb.Command) string {
	if k := cmd.ProtoReflect().WhichOneof(cmd.ProtoReflect().Descriptor().Oneofs().ByName("kind")); k != nil {
		return string(k.Name())
	}
	return "unknown"
}
