package testimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
)

// requireTools skips the test when a tool is missing, or fails it when
// INGOT_REQUIRE_TOOLS=1 (as `make test` sets) so CI cannot pass by
// skipping.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	var missing []string
	if err := CheckTools(); err != nil {
		missing = append(missing, err.Error())
	}
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("INGOT_REQUIRE_TOOLS") == "1" {
		t.Fatalf("required tools missing: %s", strings.Join(missing, "; "))
	}
	t.Skipf("tools missing: %s", strings.Join(missing, "; "))
}

var shared struct {
	once sync.Once
	dir  string
	img  Image
	err  error
}

// sharedImage builds the default image once for all the tests here.
func sharedImage(t *testing.T) Image {
	t.Helper()
	requireTools(t)
	shared.once.Do(func() {
		// Fetching the kernel needs apt and the network: without them,
		// skip as the PXE tests do, unless tools are required.
		if _, err := DefaultKernel(context.Background()); err != nil {
			shared.err = errNoKernel{err}
			return
		}
		if shared.dir, shared.err = os.MkdirTemp("", "testimage-"); shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		shared.img, shared.err = Build(ctx, Options{Dir: shared.dir})
		t.Logf("built %s (%d bytes) in %v", shared.img.Path, shared.img.Size, time.Since(start).Round(time.Millisecond))
	})
	var noKernel errNoKernel
	if errors.As(shared.err, &noKernel) && os.Getenv("INGOT_REQUIRE_TOOLS") != "1" {
		t.Skipf("no kernel: %v", noKernel.err)
	}
	if shared.err != nil {
		t.Fatalf("build image: %v", shared.err)
	}
	return shared.img
}

type errNoKernel struct{ err error }

func (e errNoKernel) Error() string { return "no kernel: " + e.err.Error() }

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// targetDisk copies img to the start of a bigger blank disk, as a deploy
// does.
func targetDisk(t *testing.T, img Image, sizeMiB int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "target.raw")
	src, err := os.Open(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	return path
}

// appendConfigDrive makes a config drive ISO the way Nova and Ironic do
// (genisoimage -J -r -V config-2) and puts it in a new partition at the
// end of disk, where Ironic's agent puts it.
func appendConfigDrive(t *testing.T, disk string, meta map[string]string) {
	t.Helper()
	dir := t.TempDir()
	latest := filepath.Join(dir, "tree", "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(latest, "meta_data.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "cd.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-J", "-r", "-V", "config-2", "-o", iso, filepath.Join(dir, "tree")).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	cd, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	partBytes := (int64(len(cd)) + mib - 1) / mib * mib
	start := (st.Size() - partBytes) / 512
	table := fmt.Sprintf("start=%d, size=%d, type=83\n", start, partBytes/512)
	cmd := exec.Command("sfdisk", "--quiet", "--append", disk)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk --append: %v\n%s", err, out)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(cd, start*512); err != nil {
		t.Fatal(err)
	}
}

// boot boots disk in QEMU (TCG, as the machine's KVM hangs) and returns
// its serial console; the image powers itself off, so QEMU must exit on
// its own.
func boot(t *testing.T, disk string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512",
		"-nographic", "-no-reboot", "-drive", "file="+disk+",if=virtio,format=raw", "-boot", "c", "-net", "none")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not power off within 60 s:\n%s", tail(out))
	}
	if err != nil {
		t.Fatalf("QEMU: %v\n%s", err, tail(out))
	}
	t.Logf("booted and powered off in %v", time.Since(start).Round(time.Millisecond))
	// A kernel panic also ends QEMU (panic=-1 and -no-reboot); only a
	// clean power off prints this.
	if !strings.Contains(string(out), "reboot: Power down") {
		t.Fatalf("the guest did not power off cleanly:\n%s", tail(out))
	}
	return out
}

func TestBootsWithConfigDrive(t *testing.T) {
	requireTools(t, "qemu-system-x86_64", "genisoimage")
	img := sharedImage(t)
	disk := targetDisk(t, img, 256)
	id := uuid.NewString()
	appendConfigDrive(t, disk, map[string]string{"uuid": id, "name": "test-node"})

	out := boot(t, disk)
	want := fmt.Sprintf("%s uuid=%s name=test-node disk=/dev/vda2", Marker, id)
	if !strings.Contains(string(out), want) {
		t.Fatalf("console lacks %q:\n%s", want, tail(out))
	}
	got, ok := ParseMarker(out)
	if !ok || got != (Boot{UUID: id, Name: "test-node", Disk: "/dev/vda2"}) {
		t.Fatalf("ParseMarker = %+v, %v", got, ok)
	}
}

func TestBootsWithoutConfigDrive(t *testing.T) {
	requireTools(t, "qemu-system-x86_64")
	img := sharedImage(t)
	out := boot(t, targetDisk(t, img, 256))
	got, ok := ParseMarker(out)
	if !ok || got.UUID != "" || !strings.Contains(got.Error, "no config-2 filesystem") {
		t.Fatalf("ParseMarker = %+v, %v:\n%s", got, ok, tail(out))
	}
	if !strings.Contains(string(out), Marker+" uuid= error=") {
		t.Fatalf("console lacks the error form:\n%s", tail(out))
	}
}

func TestImageLayout(t *testing.T) {
	img := sharedImage(t)
	if img.Size != defaultSizeMiB<<20 {
		t.Errorf("size %d, want %d", img.Size, defaultSizeMiB<<20)
	}
	out, err := exec.Command("sfdisk", "--dump", img.Path).Output()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v", err)
	}
	if !strings.Contains(string(out), "start=        2048, size=      129024, type=c, bootable") {
		t.Errorf("partition table:\n%s", out)
	}
	// The filler makes the image incompressible: a benchmark writing it
	// must move all its bytes.
	zst, err := Zstd(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if zst.Size < img.Size*8/10 {
		t.Errorf("zstd shrank the image to %d of %d bytes: not filled", zst.Size, img.Size)
	}
}

func TestZstdAndQCOW2RoundTrip(t *testing.T) {
	requireTools(t, "qemu-img")
	img := sharedImage(t)
	ctx := context.Background()

	zst, err := Zstd(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if zst.Path != img.Path+".zst" || zst.SHA256 == img.SHA256 {
		t.Errorf("zstd image %+v", zst)
	}
	if again, err := checksum(ctx, zst.Path); err != nil || again != zst {
		t.Errorf("zstd checksums %+v, recomputed %+v (%v)", zst, again, err)
	}
	f, err := os.Open(zst.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	h := sha256.New()
	if _, err := io.Copy(h, dec); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.SHA256 {
		t.Errorf("decompressed sha256 %s, want %s", got, img.SHA256)
	}

	qcow, err := QCOW2(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(qcow.Path, ".qcow2") || qcow.SHA512 == "" {
		t.Errorf("qcow2 image %+v", qcow)
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow.Path, img.Path).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, out)
	}
}

func TestParseMarker(t *testing.T) {
	for _, tc := range []struct {
		log  string
		want Boot
		ok   bool
	}{
		{"junk\r\n" + Marker + " uuid=u1 name=n1 disk=/dev/vda2\r\n[ 1.0] reboot: Power down\r\n",
			Boot{UUID: "u1", Name: "n1", Disk: "/dev/vda2"}, true},
		{Marker + " uuid= error=no config-2 filesystem on 2 block devices [/dev/vda /dev/vda1]\n",
			Boot{Error: "no config-2 filesystem on 2 block devices [/dev/vda /dev/vda1]"}, true},
		{Marker + " uuid=old name=a disk=/dev/vda2\n" + Marker + " uuid=new name=b disk=/dev/vda3",
			Boot{UUID: "new", Name: "b", Disk: "/dev/vda3"}, true},
		{Marker + " uuid=u2 name=rack 4 node disk=/dev/vdb1\n", Boot{UUID: "u2", Name: "rack 4 node", Disk: "/dev/vdb1"}, true},
		{"INGOT-TESTINIT-BOOTED cmdline=x\n", Boot{}, false},
	} {
		got, ok := ParseMarker([]byte(tc.log))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %+v, %v", tc.log, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBuildValidates(t *testing.T) {
	ctx := context.Background()
	if _, err := Build(ctx, Options{}); err == nil {
		t.Error("Build without Dir succeeded")
	}
	if _, err := Build(ctx, Options{Dir: t.TempDir(), SizeMiB: 8}); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Errorf("Build with 8 MiB: %v", err)
	}
}

func tail(b []byte) string {
	s := string(b)
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}
