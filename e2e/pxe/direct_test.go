package pxe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kernel returns the Debian cloud kernel fetched by scripts/fetch-kernel.sh
// (run here if needed), skipping when it cannot be had unless tools are
// required.
func kernel(t *testing.T) string {
	t.Helper()
	root, _ := filepath.Abs("../..")
	out := filepath.Join(root, "build", "kernel")
	if err := exec.Command(filepath.Join(root, "scripts", "fetch-kernel.sh"), out).Run(); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("fetch kernel: %v", err)
		}
		t.Skipf("no kernel: %v", err)
	}
	return filepath.Join(out, "vmlinuz")
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// The test initramfs boots under the kernel on its own: the PXE test's
// baseline, so a failure there points at the network path.
func TestTestInitramfsBootsDirectly(t *testing.T) {
	needTool(t, "qemu-system-x86_64")
	vmlinuz := kernel(t)
	initrd := buildTestInitramfs(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "256",
		"-nographic", "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 ingot.test=direct").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not power off within 60 s:\n%s", tail(out))
	}
	if err != nil || !strings.Contains(string(out), "INGOT-TESTINIT-BOOTED") || !strings.Contains(string(out), "ingot.test=direct") {
		t.Fatalf("no marker (err %v):\n%s", err, tail(out))
	}
}

func tail(b []byte) string {
	s := string(b)
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}
