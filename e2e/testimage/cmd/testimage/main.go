// Command testimage builds the end-to-end test image (see package
// testimage) for the demo and for manual runs: a bootable raw disk whose
// init prints the node UUID it reads from its config drive, then powers
// off. It prints the image's path and checksums, one "key value" per line.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/ingot/ingot/e2e/testimage"
)

func main() {
	dir := flag.String("dir", ".", "directory to write the image to")
	size := flag.Int("size", 64, "image size in MiB (at least 40)")
	format := flag.String("format", "raw", "raw, zstd or qcow2")
	flag.Parse()
	if err := run(*dir, *size, *format); err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
}

func run(dir string, size int, format string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	img, err := testimage.Build(ctx, testimage.Options{Dir: dir, SizeMiB: size})
	if err != nil {
		return err
	}
	switch format {
	case "raw":
	case "zstd":
		img, err = testimage.Zstd(ctx, img)
	case "qcow2":
		img, err = testimage.QCOW2(ctx, img)
	default:
		err = fmt.Errorf("format %q: want raw, zstd or qcow2", format)
	}
	if err != nil {
		return err
	}
	fmt.Printf("path %s\nsize %d\nsha256 %s\nsha512 %s\n", img.Path, img.Size, img.SHA256, img.SHA512)
	return nil
}
