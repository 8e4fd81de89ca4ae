// Command hashinit is the /init BenchmarkGuestHash boots: it fills a
// buffer with the ChaCha8 stream of a seed from the kernel command line,
// hashes it with every algorithm of package guesthash, prints one result
// line per algorithm on the console, and powers the machine off.
//
// Kernel command line:
//
//	ingot.guesthash.seed=<64 hex digits>  required
//	ingot.guesthash.mib=<n>               buffer size, default 256
//	ingot.guesthash.algos=<a,b,...>       default all
//	GODEBUG=cpu.avx2=off ...              the kernel hands parameters without
//	                                      a dot in their name to init as
//	                                      environment, so Go's runtime and
//	                                      x/sys/cpu see them at start-up
package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/ingot/ingot/e2e/guesthash"
)

func main() {
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stdout
	}
	if err := run(console); err != nil {
		fmt.Fprintf(console, "\nGUESTHASH-ERROR %v\n", err)
	} else {
		fmt.Fprintln(console, "GUESTHASH-DONE")
	}
	// Wait until the UART has sent everything: powering off with output
	// still queued loses the last lines.
	_ = unix.IoctlSetInt(int(console.Fd()), unix.TCSBRK, 1)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

type params struct {
	seed  [32]byte
	size  int
	algos []guesthash.Algorithm
}

func run(console *os.File) error {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("kernel command line: %w", err)
	}
	p, err := parseCmdline(string(cmdline))
	if err != nil {
		return err
	}
	printInfo(console)

	buf := make([]byte, p.size)
	start := time.Now()
	guesthash.Fill(buf, p.seed)
	fmt.Fprintf(console, "GUESTHASH-FILLED bytes=%d ns=%d\n", len(buf), time.Since(start).Nanoseconds())

	for _, a := range p.algos {
		// The host timestamps this line and the result line as a check
		// on the guest's clock, which TCG could make run slow or fast.
		fmt.Fprintf(console, "GUESTHASH-START algo=%s\n", a.Name)
		start := time.Now()
		sum := a.Sum(buf)
		elapsed := time.Since(start)
		fmt.Fprintln(console, guesthash.Result{
			Algorithm: a.Name,
			Bytes:     int64(len(buf)),
			Elapsed:   elapsed,
			Sum:       hex.EncodeToString(sum),
		})
	}
	return nil
}

func parseCmdline(cmdline string) (params, error) {
	p := params{size: 256 << 20, algos: guesthash.Algorithms}
	haveSeed := false
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "ingot.guesthash.seed":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != len(p.seed) {
				return p, fmt.Errorf("ingot.guesthash.seed=%q: want %d hex bytes", v, len(p.seed))
			}
			copy(p.seed[:], b)
			haveSeed = true
		case "ingot.guesthash.mib":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return p, fmt.Errorf("ingot.guesthash.mib=%q: want a positive number", v)
			}
			p.size = n << 20
		case "ingot.guesthash.algos":
			p.algos = nil
			for name := range strings.SplitSeq(v, ",") {
				a, ok := guesthash.Lookup(name)
				if !ok {
					return p, fmt.Errorf("ingot.guesthash.algos: unknown algorithm %q", name)
				}
				p.algos = append(p.algos, a)
			}
		}
	}
	if !haveSeed {
		return p, errors.New("no ingot.guesthash.seed on the kernel command line")
	}
	return p, nil
}

// printInfo prints what decides the speed: the vCPUs, the CPU features the
// emulated CPU offers, GODEBUG, and the code path each algorithm therefore
// takes.
func printInfo(console *os.File) {
	flags := strings.Fields(cpuinfo("flags"))
	var offered []string
	for _, f := range []string{"sse4_1", "sse4_2", "ssse3", "avx", "avx2", "bmi2", "sha_ni", "avx512f"} {
		if slices.Contains(flags, f) {
			offered = append(offered, f)
		}
	}
	clock, _ := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	fmt.Fprintf(console, "GUESTHASH-INFO cpus=%d model=%q godebug=%q flags=%s clocksource=%s\n",
		runtime.NumCPU(), cpuinfo("model name"), os.Getenv("GODEBUG"), strings.Join(offered, ","), strings.TrimSpace(string(clock)))
	fmt.Fprintf(console, "GUESTHASH-PATHS %s\n", paths(slices.Contains(flags, "sha_ni")))
}

// cpuinfo returns field key of the first CPU in /proc/cpuinfo.
func cpuinfo(key string) string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// paths restates the selection rules of the implementations this Go
// version and x/crypto ship (crypto/internal/fips140/sha256 and sha512,
// x/crypto/blake2b, hash/crc32), from the features as GODEBUG left them.
// x/sys/cpu honours the same GODEBUG settings as the runtime, except for
// "sha", which it does not know, so that one is read here.
func paths(shaNI bool) string {
	x := cpu.X86
	shaNI = shaNI && !godebugDisables("sha")
	avx2 := x.HasAVX && x.HasAVX2 && x.HasBMI2

	sha256, sha512, blake2b, crc32c := "generic", "generic", "generic", "generic"
	switch {
	case x.HasAVX && shaNI && x.HasSSE41 && x.HasSSSE3:
		sha256 = "SHA-NI"
	case avx2:
		sha256 = "AVX2"
	}
	if avx2 {
		sha512 = "AVX2"
	}
	switch {
	case x.HasAVX2:
		blake2b = "AVX2"
	case x.HasAVX:
		blake2b = "AVX"
	case x.HasSSE41:
		blake2b = "SSE4.1"
	}
	if x.HasSSE42 {
		crc32c = "SSE4.2"
	}
	return fmt.Sprintf("sha256=%s sha512=%s blake2b=%s crc32c=%s", sha256, sha512, blake2b, crc32c)
}

// godebugDisables reports whether GODEBUG turns CPU feature name off;
// later settings win, as in the runtime.
func godebugDisables(name string) bool {
	off := false
	for f := range strings.SplitSeq(os.Getenv("GODEBUG"), ",") {
		switch f {
		case "cpu." + name + "=off", "cpu.all=off":
			off = true
		case "cpu." + name + "=on", "cpu.all=on":
			off = false
		}
	}
	return off
}
