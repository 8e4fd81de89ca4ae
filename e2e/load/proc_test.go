package main

import (
	"os"
	"testing"
)

func TestProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	rss, err := procStatusKiB(pid, "VmRSS")
	if err != nil || rss <= 0 {
		t.Fatalf("VmRSS = %d, %v; want > 0", rss, err)
	}
	if _, err := procStatusKiB(pid, "NoSuchKey"); err == nil {
		t.Error("missing key: want an error")
	}
	if _, err := procCPU(pid); err != nil {
		t.Fatal(err)
	}
}
