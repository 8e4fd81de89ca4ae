// Package cpio writes newc ("070701") archives, the format the Linux
// kernel unpacks as an initramfs, for the tiny test ramdisks the end-to-end
// tests boot.
package cpio

import (
	"bytes"
	"fmt"
)

// Entry is one file of an archive.
type Entry struct {
	Name  string
	Mode  uint32 // type and permission bits: 0o100755 a file, 0o040755 a directory
	Data  []byte
	Major uint32 // device numbers, for nodes such as /dev/console
	Minor uint32
}

// Common entry modes.
const (
	Dir     = 0o040755
	Exec    = 0o100755
	File    = 0o100644
	CharDev = 0o020600
)

// Newc returns the archive of entries. Owners and times are zero, so the
// same entries always give the same bytes.
func Newc(entries []Entry) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for i, e := range append(entries, Entry{Name: "TRAILER!!!"}) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			i+1, e.Mode, 0, 0, 1, 0, len(e.Data), 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
		b.WriteString(e.Name)
		b.WriteByte(0)
		pad()
		b.Write(e.Data)
		pad()
	}
	return b.Bytes()
}
