package imagewrite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// filledTarget is a disk of size bytes of 0xAA, so that what Write does
// not touch shows.
func filledTarget(t *testing.T, size int) string {
	t.Helper()
	p := emptyTarget(t, t.TempDir(), 0)
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xAA}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkPartitionWrite checks that disk holds img at off and 0xAA
// everywhere else.
func checkPartitionWrite(t *testing.T, disk, img []byte, off, diskSize int) {
	t.Helper()
	if len(disk) != diskSize {
		t.Fatalf("disk is %d bytes, want %d", len(disk), diskSize)
	}
	if !bytes.Equal(disk[off:off+len(img)], img) {
		t.Error("the image is not at the partition's offset")
	}
	aa := bytes.Repeat([]byte{0xAA}, diskSize)
	if !bytes.Equal(disk[:off], aa[:off]) {
		t.Error("bytes before the partition changed")
	}
	if rest := disk[off+len(img):]; !bytes.Equal(rest, aa[:len(rest)]) {
		t.Error("bytes after the image changed")
	}
}

func TestWritePartition(t *testing.T) {
	const diskSize, off, limit = 16 << 20, 3 << 20, 8 << 20
	raw := testImage(5<<20+123, 20)
	gpt := gptImage(8192) // a GPT inside a partition is the image's business
	for _, tc := range []struct {
		name, format string
		img          []byte
		size         int64
		drop         int // the connection drops after this many bytes
	}{
		{"raw", FormatRaw, raw, int64(len(raw)), 0},
		{"zstd, size unknown", FormatZstd, raw, 0, 0},
		{"raw, resumed", FormatRaw, raw, int64(len(raw)), 2<<20 + 17},
		{"GPT image, not repaired", FormatRaw, gpt, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := compress(t, tc.format, tc.img)
			url := serve(t, data).URL
			if tc.drop > 0 {
				url = (&flakyServer{data: data, dropAfter: tc.drop}).start(t)
			}
			tgt := filledTarget(t, diskSize)
			res, err := Write(context.Background(), Config{
				URL: url, Format: tc.format, Algorithm: "sha512", Checksum: sum("sha512", tc.img),
				Size: tc.size, Target: tgt, Offset: off, Limit: limit, Retries: 2, BufferSize: 1 << 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != sum("sha512", tc.img) || res.Written != int64(len(tc.img)) {
				t.Errorf("result %+v, want %d bytes of digest %s", res, len(tc.img), sum("sha512", tc.img))
			}
			checkPartitionWrite(t, readTarget(t, tgt), tc.img, off, diskSize)
		})
	}

	// At Offset 0 too, the image's GPT is left where it is when there is
	// a Limit: on a whole disk it would be moved to the end.
	t.Run("GPT image at offset 0 with a limit", func(t *testing.T) {
		tgt := filledTarget(t, diskSize)
		if _, err := Write(context.Background(), Config{
			URL: serve(t, gpt).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", gpt),
			Target: tgt, Limit: limit,
		}); err != nil {
			t.Fatal(err)
		}
		checkPartitionWrite(t, readTarget(t, tgt), gpt, 0, diskSize)
	})

	t.Run("wrong checksum", func(t *testing.T) {
		_, err := Write(context.Background(), Config{
			URL: serve(t, raw).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", gpt),
			Target: filledTarget(t, diskSize), Offset: off, Limit: limit,
		})
		if !errors.Is(err, ErrChecksumMismatch) {
			t.Errorf("err = %v, want ErrChecksumMismatch", err)
		}
	})

	// Zero blocks are skipped at the offset as on a whole disk.
	t.Run("target zeroed", func(t *testing.T) {
		const bs = 64 << 10
		img := testImage(1<<20+100, 21, [2]int{2 * bs, 3 * bs})
		tgt := emptyTarget(t, t.TempDir(), diskSize)
		res, err := Write(context.Background(), Config{
			URL: serve(t, img).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", img),
			Target: tgt, Offset: off, Limit: limit, TargetZeroed: true, BufferSize: bs,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped != 3*bs || res.Written+res.Skipped != int64(len(img)) {
			t.Errorf("written %d, skipped %d; want %d skipped", res.Written, res.Skipped, 3*bs)
		}
		disk := readTarget(t, tgt)
		if !bytes.Equal(disk[off:off+len(img)], img) || len(disk) != diskSize {
			t.Error("the image is not at the partition's offset")
		}
	})
}

// An image larger than its partition fails, and nothing lands past the
// partition.
func TestWritePartitionTooLarge(t *testing.T) {
	const diskSize, off, limit = 16 << 20, 2 << 20, 4 << 20
	raw := testImage(limit+1, 22)
	for _, tc := range []struct {
		name, format string
		size         int64
		noLength     bool
	}{
		{"declared size", FormatRaw, int64(len(raw)), false},
		{"Content-Length", FormatRaw, 0, false},
		{"found while streaming zstd", FormatZstd, 0, false},
		{"found while streaming raw", FormatRaw, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := compress(t, tc.format, raw)
			url := serve(t, data).URL
			if tc.noLength {
				url = (&flakyServer{data: data, noLength: true}).start(t)
			}
			tgt := filledTarget(t, diskSize)
			res, err := Write(context.Background(), Config{
				URL: url, Format: tc.format, Algorithm: "sha256", Checksum: sum("sha256", raw),
				Size: tc.size, Target: tgt, Offset: off, Limit: limit, BufferSize: 1 << 20,
			})
			if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "4194304") {
				t.Fatalf("err = %v, want ErrImageTooLarge naming the partition's size", err)
			}
			if res.Written > limit {
				t.Errorf("%d bytes written", res.Written)
			}
			disk := readTarget(t, tgt)
			if !bytes.Equal(disk[off+limit:], bytes.Repeat([]byte{0xAA}, diskSize-off-limit)) {
				t.Error("bytes past the partition changed")
			}
			if !bytes.Equal(disk[:off], bytes.Repeat([]byte{0xAA}, off)) {
				t.Error("bytes before the partition changed")
			}
		})
	}
}

func TestWritePartitionInvalid(t *testing.T) {
	raw := testImage(1<<20, 23)
	for _, tc := range []struct {
		name          string
		offset, limit int64
		want          string
	}{
		{"unaligned offset", 1<<20 + 512, 0, "offset 1049088 is not a non-negative multiple of 4096"},
		{"negative offset", -4096, 0, "offset -4096"},
		{"negative limit", 1 << 20, -1, "negative limit -1"},
		{"partition past the end of the disk", 1 << 20, 8 << 20, "bytes 1048576 to 9437184 are not all on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Write(context.Background(), Config{
				URL: serve(t, raw).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", raw),
				Target: filledTarget(t, 8<<20), Offset: tc.offset, Limit: tc.limit,
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
