// Package imagecache is the coordinator's deploy-image cache. A node's
// image_source (an http(s) URL, or a file under the coordinator's image
// directory) is fetched once, verified against its checksum while it
// streams, converted from qcow2 to raw if need be, and kept as a file that
// the HTTP boot server hands to every agent deploying it: a raw image, or
// a zstd-compressed raw image kept compressed, as downloaded, which the
// agent decompresses as it writes. Concurrent requests for one image share
// one download; the cache is bounded in bytes and evicts the least
// recently used images; a restarted coordinator reuses what it had.
//
// MaxBytes should hold at least the images being deployed at once: an
// image handed out by Get can be evicted by later Gets before every agent
// has read it (a read already under way is not disturbed).
package imagecache

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrTooLarge is returned for an image that does not fit in the cache even
// when it is alone there.
var ErrTooLarge = errors.New("image is larger than the image cache")

// ErrRawTooLarge is returned for a zstd image that decompresses to more
// than Config.MaxRawBytes.
var ErrRawTooLarge = errors.New("decompressed image is larger than the image cache allows")

// ErrOutsideImageDir is returned for a file image source that is not under
// the coordinator's image directory.
var ErrOutsideImageDir = errors.New("image path is outside the image directory")

// Config configures a Cache.
type Config struct {
	// Dir holds the cached images, their metadata and downloads in
	// progress. It is created if missing.
	Dir string
	// MaxBytes bounds the total size of the cached image files (a zstd
	// image counts compressed); least recently used images are evicted to
	// stay under it. 0 means no bound.
	MaxBytes int64
	// MaxRawBytes bounds the decompressed size of a zstd image. The cache
	// decompresses each one once, as it downloads, to learn the digest of
	// the raw image the agent verifies; without a bound a small crafted
	// file (a zstd bomb) keeps that pass hashing for as long as it likes.
	// Set it to the largest image a disk can take. Raw and qcow2 images
	// are stored raw, so MaxBytes already bounds them. 0 means no bound.
	MaxRawBytes int64
	// ImageDir is the root for file-path image sources; paths outside it
	// are refused. Empty refuses every file source.
	ImageDir string
	// QemuImg is the qemu-img program that converts qcow2 images
	// (default "qemu-img", from qemu-utils).
	QemuImg string
	// AllowMD5 accepts md5 image checksums, which are refused by default.
	AllowMD5 bool
	// HTTPClient fetches remote images (default: a client with no overall
	// timeout, since images are large; cancel through the context).
	HTTPClient *http.Client
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Source is what instance_info says about a node's image.
type Source struct {
	// URL is image_source: an http(s) URL, or a file path (absolute, or
	// relative to the image directory; "file://" is accepted).
	URL string
	// Checksum is image_checksum: a hex digest whose algorithm is told by
	// its length (64 sha256, 128 sha512, 32 md5 if allowed), or
	// "algo:hex".
	Checksum string
	// HashAlgo and HashValue are image_os_hash_algo and
	// image_os_hash_value; when given they are used instead of Checksum.
	HashAlgo, HashValue string
	// DiskFormat is image_disk_format: "raw", "qcow2", "zstd", or "" to
	// tell by the image's first bytes. A declared format that the image's
	// bytes contradict is refused, except that "raw" also accepts a zstd
	// image: it is a compressed raw image, and it is served as such.
	DiskFormat string
}

// Formats of the cached image files, as Entry.Format tells them. They are
// the agent's WriteImage formats of the same names.
const (
	FormatRaw  = "raw"
	FormatZstd = "zstd" // a zstd-compressed raw image
)

// formatQcow2 is an image as fetched, never as cached: it is converted.
const formatQcow2 = "qcow2"

// Entry is a cached image.
type Entry struct {
	// Name is the file name in Dir, served at /images/cache/{Name}. It
	// ends in ".raw" whatever the format: Format, not the name, tells
	// the agent how to read the file.
	Name string
	Path string // absolute path of the file
	// Format is what the file holds: FormatRaw, or FormatZstd for a raw
	// image compressed with zstd.
	Format string
	Size   int64 // of the file: what is served, and counted in MaxBytes
	// RawSize is the size of the raw image, decompressed; it is Size for
	// a raw image.
	RawSize int64
	// SHA256 and SHA512 are hex digests of the raw image (decompressed),
	// which the agent verifies as it writes it: either one, whichever it
	// computes faster.
	SHA256 string
	SHA512 string
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Entries   int
	Bytes     int64
	MaxBytes  int64
	InFlight  int    // fetches running now
	Hits      uint64 // Gets served from the cache
	Misses    uint64 // Gets that started or joined a fetch
	Fetches   uint64 // fetches started (one per image, however many waited)
	Failures  uint64 // fetches that failed or were abandoned
	Evictions uint64
}

// Cache is the image cache. It is safe for concurrent use.
type Cache struct {
	dir         string
	imageDir    string
	maxBytes    int64
	maxRawBytes int64
	qemuImg     string
	allowMD5    bool
	client      *http.Client
	log         *slog.Logger

	mu      sync.Mutex
	lru     *lru
	flights map[string]*flight
	stats   Stats
}

// flight is one fetch of an image, shared by every Get waiting for it.
type flight struct {
	done    chan struct{} // closed when entry and err are set
	entry   Entry
	err     error
	waiters int                // Gets still waiting; guarded by Cache.mu
	cancel  context.CancelFunc // aborts the fetch
}

const (
	rawExt        = ".raw"
	metaExt       = ".json"
	partialPrefix = ".partial-" // downloads and conversions in progress
)

// meta is kept next to each cached image, so that a restarted coordinator
// knows the image's digest without reading it again (for a zstd image,
// without decompressing it again).
type meta struct {
	Source string `json:"source"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Format and RawSize are missing from the metadata of older versions,
	// which cached raw images only.
	Format  string `json:"format"`
	RawSize int64  `json:"raw_size"`
	// SHA512 is missing from the metadata of older versions too; their
	// images are dropped at scan and fetched again when next needed,
	// rather than read (and decompressed) at startup to compute it.
	SHA512 string `json:"sha512"`
}

// New opens the cache in cfg.Dir, taking over the images already there
// and removing what interrupted downloads left.
func New(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("imagecache: no cache directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	c := &Cache{
		dir:         dir,
		maxBytes:    cfg.MaxBytes,
		maxRawBytes: cfg.MaxRawBytes,
		qemuImg:     cfg.QemuImg,
		allowMD5:    cfg.AllowMD5,
		client:      cfg.HTTPClient,
		log:         cfg.Logger,
		lru:         newLRU(),
		flights:     make(map[string]*flight),
	}
	if cfg.ImageDir != "" {
		if c.imageDir, err = filepath.Abs(cfg.ImageDir); err != nil {
			return nil, fmt.Errorf("imagecache: %w", err)
		}
	}
	if c.qemuImg == "" {
		c.qemuImg = "qemu-img"
	}
	if c.client == nil {
		c.client = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := c.scan(); err != nil {
		return nil, fmt.Errorf("imagecache: scanning %s: %w", dir, err)
	}
	return c, nil
}

// scan loads the entries found in the cache directory, oldest use first,
// and removes partial files and images whose metadata is missing or does
// not match (the coordinator stopped between the two renames of commit),
// or lacks the sha512 that older versions did not record.
func (c *Cache) scan() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	type found struct {
		e    Entry
		used time.Time
	}
	var entries []found
	keep := make(map[string]bool)
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, partialPrefix):
			c.log.Info("removing interrupted image download", "file", name)
			c.removeFile(name)
		case strings.HasSuffix(name, metaExt):
			raw := strings.TrimSuffix(name, metaExt) + rawExt
			e, used, err := c.loadEntry(name, raw)
			if err != nil {
				c.log.Warn("dropping cached image", "file", raw, "err", err)
				c.removeFile(name)
				c.removeFile(raw)
				continue
			}
			keep[raw] = true
			entries = append(entries, found{e, used})
		}
	}
	for _, de := range des {
		if name := de.Name(); strings.HasSuffix(name, rawExt) && !strings.HasPrefix(name, partialPrefix) && !keep[name] {
			c.log.Info("removing cached image without metadata", "file", name)
			c.removeFile(name)
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range entries {
		c.lru.add(f.e)
	}
	c.evictLocked("")
	if n := c.lru.len(); n > 0 {
		c.log.Info("image cache reused", "images", n, "bytes", c.lru.bytes)
	}
	return nil
}

// loadEntry reads an image's metadata and checks it against the image
// file, whose modification time is its last use.
func (c *Cache) loadEntry(metaName, rawName string) (Entry, time.Time, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, metaName))
	if err != nil {
		return Entry{}, time.Time{}, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Entry{}, time.Time{}, fmt.Errorf("metadata: %w", err)
	}
	if _, err := hex.DecodeString(m.SHA256); err != nil || len(m.SHA256) != 2*sha256.Size {
		return Entry{}, time.Time{}, fmt.Errorf("metadata: bad sha256 %q", m.SHA256)
	}
	if m.SHA512 == "" {
		return Entry{}, time.Time{}, errors.New("metadata: no sha512 (written by an older version): fetched again when needed")
	}
	if _, err := hex.DecodeString(m.SHA512); err != nil || len(m.SHA512) != 2*sha512.Size {
		return Entry{}, time.Time{}, fmt.Errorf("metadata: bad sha512 %q", m.SHA512)
	}
	path := filepath.Join(c.dir, rawName)
	fi, err := os.Stat(path)
	if err != nil {
		return Entry{}, time.Time{}, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != m.Size {
		return Entry{}, time.Time{}, fmt.Errorf("size %d, metadata says %d", fi.Size(), m.Size)
	}
	e := Entry{Name: rawName, Path: path, Format: m.Format, Size: m.Size, RawSize: m.RawSize, SHA256: m.SHA256, SHA512: m.SHA512}
	switch m.Format {
	case "", FormatRaw:
		if m.RawSize != 0 && m.RawSize != m.Size {
			return Entry{}, time.Time{}, fmt.Errorf("metadata: raw image of %d bytes has a raw size of %d", m.Size, m.RawSize)
		}
		e.Format, e.RawSize = FormatRaw, m.Size
	case FormatZstd:
		if m.RawSize < 0 {
			return Entry{}, time.Time{}, fmt.Errorf("metadata: bad raw size %d", m.RawSize)
		}
	default:
		// Written by a newer version: serving it under a format we do
		// not know would hand agents bytes they cannot verify.
		return Entry{}, time.Time{}, fmt.Errorf("metadata: unknown format %q", m.Format)
	}
	return e, fi.ModTime(), nil
}

func (c *Cache) removeFile(name string) {
	if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("image cache: remove", "file", name, "err", err)
	}
}

// Get returns the cached image for src, fetching it first if need be.
// Gets for the same image while it is being fetched wait for that one
// fetch. A caller whose ctx ends stops waiting; the fetch itself is
// aborted only when no caller waits for it any more.
func (c *Cache) Get(ctx context.Context, src Source) (Entry, error) {
	o, err := c.resolve(src)
	if err != nil {
		return Entry{}, err
	}
	c.mu.Lock()
	if e, ok := c.lru.get(o.name); ok {
		c.mu.Unlock()
		// The file's mtime records the use, so a restart keeps the order.
		now := time.Now()
		err := os.Chtimes(e.Path, now, now)
		if err == nil {
			c.mu.Lock()
			c.stats.Hits++
			c.mu.Unlock()
			return e, nil
		}
		// Removed behind our back: forget it and fetch it again.
		c.log.Warn("cached image vanished", "image", o.display, "file", e.Name, "err", err)
		c.mu.Lock()
		c.lru.remove(e.Name)
	}
	c.stats.Misses++
	f, ok := c.flights[o.name]
	if !ok {
		// The fetch outlives the caller that started it: it serves every
		// waiter, and is cancelled when the last one gives up.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[o.name] = f
		c.stats.Fetches++
		go c.run(fctx, o, f)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.entry, f.err
	case <-ctx.Done():
		c.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
			// A Get coming now starts afresh instead of joining a fetch
			// that is being torn down.
			if c.flights[o.name] == f {
				delete(c.flights, o.name)
			}
		}
		c.mu.Unlock()
		return Entry{}, fmt.Errorf("image %s: %w", o.display, context.Cause(ctx))
	}
}

// run fetches an image for a flight and records it in the cache.
func (c *Cache) run(ctx context.Context, o origin, f *flight) {
	defer f.cancel()
	start := time.Now()
	fe, err := c.fetch(ctx, o)
	c.mu.Lock()
	if c.flights[o.name] == f {
		delete(c.flights, o.name)
	}
	var e Entry
	if err == nil {
		e, err = c.commitLocked(o, fe)
	}
	if err != nil {
		c.stats.Failures++
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("image fetch failed", "image", o.display, "err", err)
	} else {
		c.log.Info("image cached", "image", o.display, "file", e.Name, "format", e.Format,
			"bytes", e.Size, "raw_bytes", e.RawSize, "converted", fe.converted,
			"took", time.Since(start).Round(time.Millisecond))
	}
	f.entry, f.err = e, err
	close(f.done)
}

// commitLocked moves a fetched image into the cache under its name, then
// evicts to stay under the bound. The metadata is renamed last: an image
// without it is not an entry, so a crash in between leaves no half entry.
func (c *Cache) commitLocked(o origin, fe fetched) (Entry, error) {
	e := Entry{Name: o.name, Path: filepath.Join(c.dir, o.name), Format: fe.format,
		Size: fe.size, RawSize: fe.rawSize, SHA256: fe.sums.sha256, SHA512: fe.sums.sha512}
	b, err := json.Marshal(meta{Source: o.display, Size: e.Size, SHA256: e.SHA256, SHA512: e.SHA512, Format: e.Format, RawSize: e.RawSize})
	if err == nil {
		err = os.Rename(fe.path, e.Path)
	}
	if err == nil {
		err = writeFileAtomic(c.dir, strings.TrimSuffix(e.Path, rawExt)+metaExt, b)
	}
	if err != nil {
		os.Remove(fe.path)
		os.Remove(e.Path)
		return Entry{}, fmt.Errorf("image %s: storing in the cache: %w", o.display, err)
	}
	c.lru.add(e)
	c.evictLocked(e.Name)
	return e, nil
}

// evictLocked removes least recently used entries, never keep, until the
// cache is within its bound. A file being served stays readable to whoever
// has it open (unlinking does not end open reads on Linux).
func (c *Cache) evictLocked(keep string) {
	if c.maxBytes <= 0 {
		return
	}
	for c.lru.bytes > c.maxBytes {
		e, ok := c.lru.oldest()
		if !ok || e.Name == keep {
			return
		}
		c.lru.remove(e.Name)
		c.stats.Evictions++
		c.removeFile(strings.TrimSuffix(e.Name, rawExt) + metaExt)
		c.removeFile(e.Name)
		c.log.Info("image evicted", "file", e.Name, "bytes", e.Size)
	}
}

// Path returns the path of the cached image called name (an Entry.Name),
// for the HTTP server; serving an image counts as a use of it. Unknown
// names, including any with a path in them, are fs.ErrNotExist.
func (c *Cache) Path(name string) (string, error) {
	c.mu.Lock()
	e, ok := c.lru.get(name)
	c.mu.Unlock()
	if !ok {
		return "", &fs.PathError{Op: "imagecache", Path: name, Err: fs.ErrNotExist}
	}
	return e.Path, nil
}

// Open opens the cached image called name for reading. The image may be
// evicted while it is open; the open file stays readable.
func (c *Cache) Open(name string) (*os.File, error) {
	path, err := c.Path(name)
	if err != nil {
		return nil, err
	}
	return os.Open(path)
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = c.lru.len()
	s.Bytes = c.lru.bytes
	s.MaxBytes = c.maxBytes
	s.InFlight = len(c.flights)
	return s
}

// writeFileAtomic writes b to path through a partial file and a rename,
// so path never holds part of b.
func writeFileAtomic(dir, path string, b []byte) error {
	f, err := os.CreateTemp(dir, partialPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// redact returns u without user information, query or fragment: signed
// URLs (Swift temp URLs, S3 presigned) carry secrets there, and the text
// ends up in logs and in a node's last_error.
func redact(u *url.URL) string {
	r := *u
	r.User, r.RawQuery, r.ForceQuery, r.Fragment, r.RawFragment = nil, "", false, "", ""
	return r.String()
}
