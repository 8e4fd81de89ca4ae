package guesthash

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cpuVariants are the GODEBUG settings the guest runs under. Go picks each
// hash's code path from CPUID at start-up; under TCG the SIMD paths are
// emulated instruction by instruction, so the one fastest on hardware
// need not be fastest there.
var cpuVariants = []struct{ name, godebug string }{
	{"default", ""},
	{"sha-off", "cpu.sha=off"},   // sha256 without SHA-NI, if offered
	{"avx2-off", "cpu.avx2=off"}, // sha256/sha512 generic, blake2b AVX
	{"avx-off", "cpu.avx=off"},   // as avx2-off, blake2b SSE4.1
	{"all-off", "cpu.all=off"},   // scalar code everywhere (crc32c too)
}

// guestMiB is the size of the buffer the guest hashes; INGOT_GUESTHASH_MIB
// shrinks it for a quick run.
func guestMiB(b *testing.B) int {
	s := os.Getenv("INGOT_GUESTHASH_MIB")
	if s == "" {
		return 256
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("INGOT_GUESTHASH_MIB=%q: want a positive number", s)
	}
	return n
}

// needGuest returns the kernel to boot, skipping (or failing, with
// INGOT_REQUIRE_TOOLS set) when QEMU or the kernel is missing.
func needGuest(b *testing.B) string {
	b.Helper()
	missing := func(format string, args ...any) {
		b.Helper()
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			b.Fatalf(format, args...)
		}
		b.Skipf(format, args...)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missing("qemu-system-x86_64 not found: %v", err)
	}
	root, err := repoRoot()
	if err != nil {
		b.Fatal(err)
	}
	vmlinuz := filepath.Join(root, "build", "kernel", "vmlinuz")
	if _, err := os.Stat(vmlinuz); err != nil {
		missing("no kernel (run scripts/fetch-kernel.sh): %v", err)
	}
	return vmlinuz
}

// BenchmarkGuestHash boots hashinit under TCG once per iteration (use
// -benchtime 1x) and reports each algorithm's throughput inside the guest,
// in MB/s (10^6 bytes a second), as measured by the guest's clock.
func BenchmarkGuestHash(b *testing.B) {
	vmlinuz := needGuest(b)
	ctx := b.Context()
	initrd, err := buildInitramfs(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	size := guestMiB(b) << 20
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails
	// The host recomputes every digest of the same bytes, once, to prove
	// the emulated SIMD paths compute the right thing, not only quickly.
	want := sync.OnceValue(func() map[string]string { return hostDigests(seed, size) })

	for _, smp := range []int{1, 2} {
		for _, v := range cpuVariants {
			b.Run(fmt.Sprintf("smp=%d/cpu=%s", smp, v.name), func(b *testing.B) {
				total := map[string]float64{}
				for range b.N {
					run, err := bootGuest(ctx, guestConfig{
						kernel: vmlinuz, initrd: initrd, smp: smp,
						godebug: v.godebug, seed: seed, mib: size >> 20,
					})
					if err != nil {
						b.Fatal(err)
					}
					b.Logf("%s\n%s", run.info, run.paths)
					if len(run.results) != len(Algorithms) {
						b.Fatalf("the guest printed %d results, want one per algorithm (%d)", len(run.results), len(Algorithms))
					}
					for _, r := range run.results {
						if r.Sum != want()[r.Algorithm] {
							b.Fatalf("%s in the guest: digest %s, the host computes %s", r.Algorithm, r.Sum, want()[r.Algorithm])
						}
						host := run.hostElapsed[r.Algorithm]
						b.Logf("%-12s %7.1f MB/s (guest clock %6.2f s, host saw %6.2f s)",
							r.Algorithm, r.MBps(), r.Elapsed.Seconds(), host.Seconds())
						// The figures come from the guest's clock; refuse them
						// if it disagrees with the host's (console latency is
						// milliseconds, so only long measurements are judged).
						if host > 5*time.Second && math.Abs(r.Elapsed.Seconds()/host.Seconds()-1) > 0.1 {
							b.Fatalf("%s: guest clock says %v, the host saw %v", r.Algorithm, r.Elapsed, host)
						}
						total[r.Algorithm] += r.MBps()
					}
				}
				for _, a := range Algorithms {
					if t, ok := total[a.Name]; ok {
						b.ReportMetric(t/float64(b.N), a.Name+"-MB/s")
					}
				}
			})
		}
	}
}

type guestConfig struct {
	kernel, initrd string
	smp            int
	godebug        string
	seed           [32]byte
	mib            int
}

type guestRun struct {
	info, paths string // the guest's GUESTHASH-INFO and -PATHS lines
	results     []Result
	// hostElapsed is, per algorithm, the host's time between the guest's
	// START and RESULT lines: a check on the emulated clock.
	hostElapsed map[string]time.Duration
}

// bootGuest runs one guest to power-off and collects its results.
func bootGuest(ctx context.Context, cfg guestConfig) (guestRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	appendArgs := []string{
		// quiet: boot messages on a 115200-baud console cost seconds and
		// can land in the middle of a result line.
		"console=ttyS0", "quiet", "panic=-1",
		"ingot.guesthash.seed=" + hex.EncodeToString(cfg.seed[:]),
		"ingot.guesthash.mib=" + strconv.Itoa(cfg.mib),
	}
	if cfg.godebug != "" {
		// No dot in the name: the kernel puts it in init's environment.
		appendArgs = append(appendArgs, "GODEBUG="+cfg.godebug)
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-cpu", "max", "-smp", strconv.Itoa(cfg.smp), "-m", "1024",
		"-nographic", "-no-reboot",
		"-kernel", cfg.kernel, "-initrd", cfg.initrd,
		"-append", strings.Join(appendArgs, " "))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return guestRun{}, fmt.Errorf("qemu stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return guestRun{}, fmt.Errorf("start qemu: %w", err)
	}
	run, log, scanErr := readConsole(stdout)
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return run, fmt.Errorf("guest (smp %d, GODEBUG=%q) did not power off in time:\n%s", cfg.smp, cfg.godebug, tail(log))
	case scanErr != nil:
		return run, fmt.Errorf("guest (smp %d, GODEBUG=%q): %w\n%s%s", cfg.smp, cfg.godebug, scanErr, tail(log), stderr.String())
	case waitErr != nil:
		return run, fmt.Errorf("qemu (smp %d, GODEBUG=%q): %w\n%s%s", cfg.smp, cfg.godebug, waitErr, tail(log), stderr.String())
	}
	if len(run.results) == 0 {
		return run, fmt.Errorf("guest (smp %d, GODEBUG=%q) printed no results:\n%s", cfg.smp, cfg.godebug, tail(log))
	}
	return run, nil
}

// readConsole reads the guest's console to the end, timestamping the lines
// the host times. It returns the results, the whole log, and an error if
// the guest reported one or ended without GUESTHASH-DONE.
func readConsole(r io.Reader) (guestRun, []byte, error) {
	run := guestRun{hostElapsed: map[string]time.Duration{}}
	var log bytes.Buffer
	started := map[string]time.Time{}
	var failure error
	done := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		now := time.Now()
		line := strings.TrimRight(sc.Text(), "\r")
		log.WriteString(line + "\n")
		switch {
		case strings.Contains(line, "GUESTHASH-START "):
			_, algo, _ := strings.Cut(line, "algo=")
			started[strings.TrimSpace(algo)] = now
		case strings.Contains(line, ResultPrefix+" "):
			res, err := ParseResult(line)
			if err != nil {
				failure = err
				continue
			}
			run.results = append(run.results, res)
			if t, ok := started[res.Algorithm]; ok {
				run.hostElapsed[res.Algorithm] = now.Sub(t)
			}
		case strings.Contains(line, "GUESTHASH-INFO "):
			// Drop the terminal escapes SeaBIOS leaves on the first line.
			run.info = line[strings.Index(line, "GUESTHASH-INFO "):]
		case strings.Contains(line, "GUESTHASH-PATHS "):
			run.paths = line[strings.Index(line, "GUESTHASH-PATHS "):]
		case strings.Contains(line, "GUESTHASH-ERROR "):
			failure = fmt.Errorf("guest: %s", line)
		case strings.Contains(line, "GUESTHASH-DONE"):
			done = true
		}
	}
	if err := sc.Err(); err != nil && failure == nil {
		failure = fmt.Errorf("reading the console: %w", err)
	}
	if failure == nil && !done {
		failure = fmt.Errorf("the guest stopped before GUESTHASH-DONE")
	}
	return run, log.Bytes(), failure
}

// hostDigests computes every algorithm's digest of the buffer the guest
// fills from seed.
func hostDigests(seed [32]byte, size int) map[string]string {
	buf := make([]byte, size)
	Fill(buf, seed)
	sums := map[string]string{}
	for _, a := range Algorithms {
		sums[a.Name] = hex.EncodeToString(a.Sum(buf))
	}
	return sums
}

func tail(b []byte) string {
	const n = 4000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// BenchmarkHostHash is the native reference for BenchmarkGuestHash: the
// same algorithms over the same kind of data, ChunkSize bytes an
// operation.
func BenchmarkHostHash(b *testing.B) {
	buf := make([]byte, ChunkSize)
	Fill(buf, [32]byte{1})
	for _, a := range Algorithms {
		b.Run(a.Name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				a.Sum(buf)
			}
		})
	}
}
