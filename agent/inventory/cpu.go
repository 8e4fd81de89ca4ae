package inventory

import (
	"bufio"
	"errors"
	"os"
	"runtime"
	"strings"

	"github.com/ingot/ingot/proto/agentpb"
)

// ErrNoCPU is returned by Collect when /proc/cpuinfo lists no processor.
var ErrNoCPU = errors.New("inventory: no CPU found in /proc/cpuinfo")

// cpuArch maps GOARCH to Ironic's cpu_arch (uname -m). The agent is built
// for the node, so its own architecture is the node's.
var cpuArch = map[string]string{
	"amd64":   "x86_64",
	"arm64":   "aarch64",
	"386":     "i686",
	"arm":     "armv7l",
	"ppc64le": "ppc64le",
	"ppc64":   "ppc64",
	"s390x":   "s390x",
	"riscv64": "riscv64",
}

func architecture(goarch string) string {
	if a, ok := cpuArch[goarch]; ok {
		return a
	}
	return goarch
}

// cpu counts the logical CPUs in /proc/cpuinfo ("processor" entries) and
// takes the model and flags from the first. x86 says "model name" and
// "flags", arm64 "Features" and no model name at all.
func (s sysfs) cpu() (*agentpb.CPU, error) {
	f, err := os.Open(s.path("proc/cpuinfo"))
	if err != nil {
		return nil, errors.Join(ErrNoCPU, err)
	}
	defer f.Close()
	cpu := &agentpb.CPU{Architecture: architecture(runtime.GOARCH)}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20) // flag lines run to a few KiB
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "processor":
			cpu.Count++
		case "model name", "cpu model":
			if cpu.ModelName == "" {
				cpu.ModelName = value
			}
		case "flags", "Features":
			if cpu.Flags == nil {
				cpu.Flags = strings.Fields(value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, errors.Join(ErrNoCPU, err)
	}
	if cpu.Count == 0 {
		return nil, ErrNoCPU
	}
	return cpu, nil
}

// Emulated reports whether cpu is QEMU's TCG, an emulated CPU: there SIMD
// code is the slow code (e2e/guesthash measures it), which changes how the
// agent should hash.
func Emulated(cpu *agentpb.CPU) bool {
	return strings.Contains(cpu.GetModelName(), EmulatedModel)
}

// EmulatedModel is in the model name of QEMU's TCG CPUs.
const EmulatedModel = "QEMU TCG CPU"
