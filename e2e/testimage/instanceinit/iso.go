package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// A minimal ISO 9660 reader: just enough to find one small file by path
// in a config drive, through the Joliet tree or Rock Ridge names, so the
// init needs no filesystem library and no kernel iso9660 module.

const (
	isoSector = 2048
	// maxRead bounds what a corrupt or hostile descriptor can make us
	// allocate; config drive directories and metadata are far smaller.
	maxRead = 4 << 20
)

// isoVolumeID returns the volume identifier of the primary volume
// descriptor at byte 32768, and whether there is one.
func isoVolumeID(r io.ReaderAt) (string, bool) {
	pvd := make([]byte, isoSector)
	if _, err := r.ReadAt(pvd, 16*isoSector); err != nil {
		return "", false
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return "", false
	}
	return strings.TrimRight(string(pvd[40:72]), " \x00"), true
}

// isoTree is one directory hierarchy of the volume: the primary one
// (with Rock Ridge names when present) or the Joliet one.
type isoTree struct {
	r         io.ReaderAt
	blockSize int64
	root      isoEntry
	joliet    bool
}

type isoEntry struct {
	name   string
	extent int64 // logical block number
	size   int64
	dir    bool
}

// readISOFile returns the contents of the file at path (slash separated,
// compared case-insensitively), looking through the Joliet tree first and
// then the primary tree.
func readISOFile(r io.ReaderAt, path string) ([]byte, error) {
	trees, err := isoTrees(r)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, t := range trees {
		data, err := t.readFile(path)
		if err == nil {
			return data, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// isoTrees reads the volume descriptors and returns the Joliet tree (if
// any) before the primary one.
func isoTrees(r io.ReaderAt) ([]isoTree, error) {
	var primary, joliet *isoTree
	vd := make([]byte, isoSector)
	for sector := int64(16); sector < 16+32; sector++ {
		if _, err := r.ReadAt(vd, sector*isoSector); err != nil {
			return nil, fmt.Errorf("read volume descriptor %d: %w", sector, err)
		}
		if string(vd[1:6]) != "CD001" {
			return nil, fmt.Errorf("volume descriptor %d: bad signature", sector)
		}
		typ := vd[0]
		if typ == 255 { // set terminator
			break
		}
		isJoliet := typ == 2 && vd[88] == '%' && vd[89] == '/' && strings.ContainsRune("@CE", rune(vd[90]))
		if typ != 1 && !isJoliet {
			continue
		}
		root, err := parseRecord(vd[156:190], isJoliet)
		if err != nil {
			return nil, fmt.Errorf("root directory record: %w", err)
		}
		t := &isoTree{r: r, blockSize: int64(le16(vd[128:])), root: root, joliet: isJoliet}
		if t.blockSize == 0 {
			t.blockSize = isoSector
		}
		if isJoliet && joliet == nil {
			joliet = t
		} else if typ == 1 && primary == nil {
			primary = t
		}
	}
	var trees []isoTree
	if joliet != nil {
		trees = append(trees, *joliet)
	}
	if primary != nil {
		trees = append(trees, *primary)
	}
	if len(trees) == 0 {
		return nil, errors.New("no primary volume descriptor")
	}
	return trees, nil
}

func (t isoTree) readFile(path string) ([]byte, error) {
	cur := t.root
	for _, part := range strings.Split(path, "/") {
		if !cur.dir {
			return nil, fmt.Errorf("%s: not a directory", cur.name)
		}
		entries, err := t.readDir(cur)
		if err != nil {
			return nil, err
		}
		found := false
		for _, e := range entries {
			if strings.EqualFold(e.name, part) {
				cur, found = e, true
				break
			}
		}
		if !found {
			kind := "primary"
			if t.joliet {
				kind = "Joliet"
			}
			return nil, fmt.Errorf("%s not found in the %s tree", path, kind)
		}
	}
	if cur.dir {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	return t.read(cur)
}

func (t isoTree) read(e isoEntry) ([]byte, error) {
	if e.size > maxRead {
		return nil, fmt.Errorf("%s: %d bytes is too large", e.name, e.size)
	}
	buf := make([]byte, e.size)
	if _, err := t.r.ReadAt(buf, e.extent*t.blockSize); err != nil {
		return nil, fmt.Errorf("read %s: %w", e.name, err)
	}
	return buf, nil
}

func (t isoTree) readDir(d isoEntry) ([]isoEntry, error) {
	buf, err := t.read(d)
	if err != nil {
		return nil, err
	}
	var entries []isoEntry
	for off := 0; off < len(buf); {
		n := int(buf[off])
		if n == 0 {
			// Records never cross a block boundary: the rest of this
			// block is padding.
			off = (off/int(t.blockSize) + 1) * int(t.blockSize)
			continue
		}
		if off+n > len(buf) {
			return nil, fmt.Errorf("directory %s: record overruns the extent", d.name)
		}
		e, err := parseRecord(buf[off:off+n], t.joliet)
		off += n
		if err != nil {
			return nil, fmt.Errorf("directory %s: %w", d.name, err)
		}
		if e.name != "" { // "." and ".."
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// parseRecord decodes one directory record (ECMA-119 9.1). The self and
// parent entries come back with an empty name.
func parseRecord(rec []byte, joliet bool) (isoEntry, error) {
	if len(rec) < 34 || int(rec[0]) > len(rec) {
		return isoEntry{}, errors.New("short directory record")
	}
	rec = rec[:rec[0]]
	nameLen := int(rec[32])
	if 33+nameLen > len(rec) {
		return isoEntry{}, errors.New("directory record name overruns the record")
	}
	raw := rec[33 : 33+nameLen]
	e := isoEntry{
		extent: int64(le32(rec[2:])),
		size:   int64(le32(rec[10:])),
		dir:    rec[25]&2 != 0,
	}
	if nameLen == 1 && raw[0] <= 1 {
		return e, nil
	}
	var name string
	if joliet {
		u := make([]uint16, nameLen/2)
		for i := range u {
			u[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
		}
		name = string(utf16.Decode(u))
	} else {
		su := 33 + nameLen
		if nameLen%2 == 0 { // a padding byte keeps the system use area even
			su++
		}
		if su < len(rec) {
			if nm := rockRidgeName(rec[su:]); nm != "" {
				e.name = nm
				return e, nil
			}
		}
		name = string(raw)
	}
	// ISO 9660 and Joliet names end in ";<version>", and an extensionless
	// ISO 9660 name in ".".
	if i := strings.LastIndexByte(name, ';'); i >= 0 {
		name = name[:i]
	}
	e.name = strings.TrimSuffix(name, ".")
	return e, nil
}

// rockRidgeName returns the alternate name (NM entries, IEEE P1282) in a
// record's system use area, or "" when there is none. Names continued in
// a continuation area (CE) are not followed: config drive names are short.
func rockRidgeName(su []byte) string {
	var name strings.Builder
	for len(su) >= 4 {
		n := int(su[2])
		if n < 4 || n > len(su) {
			break
		}
		switch string(su[0:2]) {
		case "NM":
			if n >= 5 && su[4]&0b110 == 0 { // not "." or ".."
				name.Write(su[5:n])
			}
		case "ST":
			return name.String()
		}
		su = su[n:]
	}
	return name.String()
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
