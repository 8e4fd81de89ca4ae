package inventory

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"github.com/ingot/ingot/proto/agentpb"
)

const mib = 1 << 20

// memory reports MemTotal (what the kernel can use) and the installed
// memory in MiB. The kernel keeps some memory for itself, so MemTotal is
// short of the DIMMs; the memory block devices add up what is online in
// whole blocks. Without them (no memory hotplug support), MemTotal rounded
// up to 128 MiB is the usual estimate, as Ironic's agent makes.
func (s sysfs) memory() *agentpb.Memory {
	m := &agentpb.Memory{TotalBytes: s.memTotal()}
	if mb := s.memoryBlocksMiB(); mb > 0 {
		m.PhysicalMb = mb
	} else if m.TotalBytes > 0 {
		const step = 128 * mib
		m.PhysicalMb = (m.TotalBytes + step - 1) / step * (step / mib)
	}
	return m
}

func (s sysfs) memTotal() uint64 {
	f, err := os.Open(s.path("proc/meminfo"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "MemTotal:        2030592 kB"
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// memoryBlocksMiB adds up the online memory blocks under
// /sys/devices/system/memory; 0 if the kernel has no such directory.
func (s sysfs) memoryBlocksMiB() uint64 {
	const dir = "sys/devices/system/memory"
	size, err := strconv.ParseUint(s.read(dir, "block_size_bytes"), 16, 64)
	if err != nil || size == 0 {
		return 0
	}
	var blocks uint64
	for _, name := range s.list(dir) {
		if !strings.HasPrefix(name, "memory") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(name, "memory")); err != nil {
			continue
		}
		// Blocks without an "online" attribute cannot be offlined: online.
		if st := s.read(dir, name, "online"); st == "1" || st == "" {
			blocks++
		}
	}
	return blocks * size / mib
}
