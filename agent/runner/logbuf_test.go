package runner

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogBufferKeepsWholeLastLines(t *testing.T) {
	b := NewLogBuffer(100)
	for i := range 50 {
		fmt.Fprintf(b, "line %02d\n", i) // 8 bytes each
	}
	got := string(b.Bytes())
	if len(got) > 100 || !strings.HasPrefix(got, "line ") || !strings.HasSuffix(got, "line 49\n") {
		t.Errorf("kept %q", got)
	}
	if want := 12; strings.Count(got, "\n") != want {
		t.Errorf("kept %d lines, want %d", strings.Count(got, "\n"), want)
	}
}

func TestTeeAndTarGz(t *testing.T) {
	var console bytes.Buffer
	buf := NewLogBuffer(0)
	log := slog.New(teeHandler{slog.NewTextHandler(&console, nil), slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	log.With("k", "v").Debug("only in the buffer")
	log.Info("in both")
	if c := console.String(); strings.Contains(c, "only in the buffer") || !strings.Contains(c, "in both") {
		t.Errorf("console: %q", c)
	}
	tgz, err := buf.tarGz("ingot-agent.log", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, tgz)
	if l := files["ingot-agent.log"]; !strings.Contains(l, `only in the buffer" k=v`) || !strings.Contains(l, "in both") {
		t.Errorf("archive: %q", files)
	}
}

// untar reads a gzip tar into a map of name to content.
func untar(t *testing.T, tgz []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
}
