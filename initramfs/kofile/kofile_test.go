package kofile

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestRead(t *testing.T) {
	want := bytes.Repeat([]byte("\x7fELF module "), 1000)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var gz, x bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(want)
	gw.Close()
	xw, _ := xz.NewWriter(&x)
	xw.Write(want)
	xw.Close()
	zw, _ := zstd.NewWriter(nil)
	zs := zw.EncodeAll(want, nil)
	for _, p := range []string{
		write("a.ko", want), write("b.ko.gz", gz.Bytes()), write("c.ko.xz", x.Bytes()), write("d.ko.zst", zs),
	} {
		got, err := Read(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want the plain module", filepath.Base(p), len(got), err)
		}
	}
	if _, err := Read(write("e.ko.bz2", []byte("x"))); err == nil {
		t.Error("an unknown compression was accepted")
	}
	if _, err := Read(write("f.ko.xz", []byte("not xz"))); err == nil {
		t.Error("a corrupt .xz was accepted")
	}
}
