package disk

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

type progressLog struct{ calls [][2]int64 }

func (p *progressLog) record(done, total int64) { p.calls = append(p.calls, [2]int64{done, total}) }

// check verifies progress starts at 0, never goes back, and ends at end.
func (p *progressLog) check(t *testing.T, total, end int64) {
	t.Helper()
	if len(p.calls) < 2 {
		t.Fatalf("progress called %d times: %v", len(p.calls), p.calls)
	}
	if p.calls[0] != [2]int64{0, total} {
		t.Errorf("first progress %v, want [0 %d]", p.calls[0], total)
	}
	for i, c := range p.calls {
		if c[1] != total || (i > 0 && c[0] < p.calls[i-1][0]) {
			t.Fatalf("progress %d is %v after %v", i, c, p.calls[max(i-1, 0)])
		}
	}
	if last := p.calls[len(p.calls)-1]; last[0] != end {
		t.Errorf("last progress %v, want done = %d", last, end)
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

func assertZero(t *testing.T, path string, size int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != size {
		t.Fatalf("size %d, want %d", len(b), size)
	}
	for i, c := range b {
		if c != 0 {
			t.Fatalf("byte %d is %#x after erase", i, c)
		}
	}
}

// TestFullEraseDiscard runs the real FullErase: on a regular file the
// discard is a punched hole, which reads back as zeroes, so nothing is
// written and the file ends up with no blocks at all.
func TestFullEraseDiscard(t *testing.T) {
	const size = 8*mib + 512
	path, _ := fakeDisk(t, size)
	var p progressLog
	if err := FullErase(context.Background(), path, p.record); err != nil {
		t.Fatal(err)
	}
	assertZero(t, path, size)
	p.check(t, size, size)
	if len(p.calls) != 2 {
		t.Errorf("discard path reported %d progress steps, want start and end: %v", len(p.calls), p.calls)
	}
	// The partial block at the end is zeroed in place, not freed.
	if a := allocated(t, path); a > 4096 {
		t.Errorf("%d bytes still allocated: the hole was not punched", a)
	}
}

// TestFullEraseZeroing covers the writing path and when it is taken: no
// discard, a discard that fails, and one that "succeeds" but leaves the
// data readable (which the read-back catches).
func TestFullEraseZeroing(t *testing.T) {
	tests := []struct {
		name    string
		discard func(*os.File, int64) error
	}{
		{"no discard", nil},
		{"discard fails", func(*os.File, int64) error { return errors.New("EOPNOTSUPP") }},
		{"discard keeps data", func(*os.File, int64) error { return nil }},
	}
	// An odd tail (not a multiple of 4 KiB) exercises the buffered write
	// after the O_DIRECT ones.
	const size = 10*mib + 1000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := fakeDisk(t, size)
			e := eraser{discard: tt.discard, chunk: 4 * mib, samples: 64}
			var p progressLog
			if err := e.run(context.Background(), path, p.record); err != nil {
				t.Fatal(err)
			}
			assertZero(t, path, size)
			p.check(t, size, size)
			// 0, then one step per write: 4 MiB, 8 MiB, the rest.
			if len(p.calls) != 4 {
				t.Errorf("progress %v, want 4 calls", p.calls)
			}
			if a := allocated(t, path); a < size {
				t.Errorf("only %d bytes allocated: zeroes were not written", a)
			}
		})
	}
}

func TestFullEraseCancel(t *testing.T) {
	const size = 12 * mib
	path, before := fakeDisk(t, size)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var p progressLog
	e := eraser{chunk: 4 * mib}
	err := e.run(ctx, path, func(done, total int64) {
		p.record(done, total)
		if done > 0 {
			cancel() // after the first write
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	p.check(t, size, 4*mib)
	after, _ := os.ReadFile(path)
	if string(after[4*mib:]) != string(before[4*mib:]) {
		t.Error("bytes after the cancellation point were changed")
	}

	// Through the public function, a cancelled context does nothing at all.
	var none progressLog
	err = FullErase(ctx, path, none.record)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "full erase of "+path) {
		t.Errorf("err = %v", err)
	}
	if len(none.calls) != 0 {
		t.Errorf("progress called after cancellation: %v", none.calls)
	}
}

func TestFullEraseMissing(t *testing.T) {
	if err := FullErase(context.Background(), "/nonexistent/ingot-disk", nil); err == nil {
		t.Fatal("no error for a missing device")
	}
}
