package imagecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Magic numbers that start the image formats told by their first bytes.
const (
	qcow2Magic = "QFI\xfb"
	zstdMagic  = "\x28\xb5\x2f\xfd" // RFC 8878, section 3.1.1
)

// magicLen is how many bytes tell an image's format.
const magicLen = 4

// detectFormat tells an image's format by its first bytes; anything not
// recognised is raw.
func detectFormat(head []byte) string {
	switch string(head) {
	case qcow2Magic:
		return formatQcow2
	case zstdMagic:
		return FormatZstd
	}
	return FormatRaw
}

// formatAllowed reports whether an image whose bytes are in format got may
// be taken for one declared as declared ("" declares nothing).
func formatAllowed(declared, got string) bool {
	// zstd holds a raw image, which the agent writes as it decompresses,
	// so a compressed raw image is still the raw image declared; no tool
	// probes it for a disk format, the risk the check guards against.
	return declared == "" || declared == got || (declared == FormatRaw && got == FormatZstd)
}

// origin is a Source resolved: where its bytes come from, what they must
// hash to, and the name of the cache entry they become.
type origin struct {
	url     string // remote: the URL to fetch
	rel     string // local: the path relative to the image directory
	display string // for logs and errors: no credentials in it
	want    digest
	hasWant bool
	format  string // declared: "raw", "qcow2", "zstd", or "" to detect
	name    string // cache file name
}

func (o origin) remote() bool { return o.url != "" }

// resolve checks src and names its cache entry. The name is derived from
// the source and its digest, not from the digest alone: an image is shared
// only by nodes that name the same source, so knowing an image's digest
// never gives access to another tenant's image.
func (c *Cache) resolve(src Source) (origin, error) {
	var o origin
	var err error
	if o.want, o.hasWant, err = expectedDigest(src, c.allowMD5); err != nil {
		return origin{}, err
	}
	switch f := strings.ToLower(strings.TrimSpace(src.DiskFormat)); f {
	case "", FormatRaw, formatQcow2, FormatZstd:
		o.format = f
	default:
		return origin{}, fmt.Errorf("image disk format %q is not supported (raw, qcow2, zstd)", src.DiskFormat)
	}
	source := strings.TrimSpace(src.URL)
	lower := strings.ToLower(source)
	switch {
	case source == "":
		return origin{}, errors.New("no image source")
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		u, err := url.Parse(source)
		if err != nil || u.Host == "" {
			return origin{}, fmt.Errorf("image source is not a valid URL")
		}
		o.url, o.display = u.String(), redact(u)
		if !o.hasWant {
			return origin{}, fmt.Errorf("image %s: %w", o.display, ErrChecksumRequired)
		}
		o.name = entryName("url", o.url, o)
		return o, nil
	case strings.HasPrefix(lower, "file://"):
		u, err := url.Parse(source)
		if err != nil || (u.Host != "" && u.Host != "localhost") {
			return origin{}, fmt.Errorf("image source %q is not a local file URL", source)
		}
		return o, c.resolveLocal(&o, u.Path)
	case strings.Contains(source, "://"):
		return origin{}, fmt.Errorf("image source scheme of %q is not supported (http, https, file)", source)
	}
	return o, c.resolveLocal(&o, source)
}

// resolveLocal checks that p is a regular file under the image directory.
// The lexical check gives a clear error for "../" and foreign absolute
// paths; os.Root then also refuses symbolic links that lead out.
func (c *Cache) resolveLocal(o *origin, p string) error {
	o.display = p
	if c.imageDir == "" {
		return fmt.Errorf("image %s: file image sources are disabled (no image directory)", p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.imageDir, p)
	}
	rel, err := filepath.Rel(c.imageDir, filepath.Clean(p))
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("image %s: %w %s", o.display, ErrOutsideImageDir, c.imageDir)
	}
	f, err := os.OpenInRoot(c.imageDir, rel)
	if err != nil {
		return fmt.Errorf("image %s: %w", o.display, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image %s: %w", o.display, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image %s: not a regular file", o.display)
	}
	o.rel = rel
	id := rel
	if !o.hasWant {
		// Without a digest, a file replaced in place must not be served
		// from the cache as the old one.
		id = fmt.Sprintf("%s\x00%d\x00%d", rel, fi.Size(), fi.ModTime().UnixNano())
	}
	o.name = entryName("file", id, *o)
	return nil
}

func entryName(kind, id string, o origin) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", kind, id, o.want)
	return hex.EncodeToString(h.Sum(nil)) + rawExt
}

// rawSums are the hex digests of a raw image (decompressed, converted)
// that an agent may verify as it writes it: sha256, or sha512, which is
// the faster one where the hashes run as generic code.
type rawSums struct {
	sha256, sha512 string
}

// fetched is an image fetched into a partial file, ready to be committed.
type fetched struct {
	path      string
	format    string // FormatRaw or FormatZstd
	size      int64
	rawSize   int64
	sums      rawSums // of the raw image
	converted bool
}

// fetch reads o into a partial file in the cache directory, verified and
// raw or zstd. On error nothing is left behind.
func (c *Cache) fetch(ctx context.Context, o origin) (fetched, error) {
	var (
		r    io.ReadCloser
		size int64
		err  error
	)
	if o.remote() {
		r, size, err = c.openRemote(ctx, o)
	} else {
		r, size, err = c.openLocal(ctx, o)
	}
	if err != nil {
		return fetched{}, err
	}
	defer r.Close()
	in, err := c.ingest(ctx, o, r, size)
	if err != nil {
		return fetched{}, err
	}
	if in.format != formatQcow2 {
		return fetched{path: in.path, format: in.format, size: in.size, rawSize: in.rawSize, sums: in.sums}, nil
	}
	raw, err := c.toRaw(ctx, o, in.path)
	os.Remove(in.path)
	if err != nil {
		return fetched{}, err
	}
	sums, n, err := hashFile(ctx, raw)
	if err != nil {
		os.Remove(raw)
		return fetched{}, fmt.Errorf("image %s: hashing the converted image: %w", o.display, err)
	}
	return fetched{path: raw, format: FormatRaw, size: n, rawSize: n, sums: sums, converted: true}, nil
}

func (c *Cache) openRemote(ctx context.Context, o origin) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s: %w", o.display, err)
	}
	// Asking for the bytes as stored keeps Content-Length meaningful (Go
	// would hide a gzip encoding and its length), so truncation shows.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, secrets and all
		}
		return nil, 0, fmt.Errorf("downloading image %s: %w", o.display, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("downloading image %s: server answered %s", o.display, resp.Status)
	}
	if c.maxBytes > 0 && resp.ContentLength > c.downloadLimit(o.format) {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("image %s: %d bytes: %w (%d bytes)", o.display, resp.ContentLength, ErrTooLarge, c.maxBytes)
	}
	return resp.Body, resp.ContentLength, nil
}

func (c *Cache) openLocal(ctx context.Context, o origin) (io.ReadCloser, int64, error) {
	f, err := os.OpenInRoot(c.imageDir, o.rel)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s: %w", o.display, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("image %s: %w", o.display, err)
	}
	return ctxReadCloser{ctx, f}, fi.Size(), nil
}

// downloadLimit is how many bytes of an image in format ("" while it is
// not known) are read before giving up, or -1 for no limit. Raw and zstd
// images are cached as read, so they must fit as they are. A qcow2 image
// may be slightly larger than the raw image it holds (its metadata), so it
// gets some slack; its raw size is checked before conversion.
func (c *Cache) downloadLimit(format string) int64 {
	if c.maxBytes <= 0 {
		return -1
	}
	if format == FormatRaw || format == FormatZstd {
		return c.maxBytes
	}
	return c.maxBytes + c.maxBytes/16 + 1<<20
}

// ingested is an image as read, before any conversion.
type ingested struct {
	path    string
	size    int64
	format  string  // FormatRaw, FormatZstd or formatQcow2, from the first bytes
	rawSize int64   // decompressed, for raw and zstd
	sums    rawSums // of the raw image, for raw and zstd; empty for qcow2
}

// copyBufSize is the size of the buffer between the network and the
// hashes; larger than io.Copy's 32 KiB to cut per-call overhead.
const copyBufSize = 256 << 10

// ingest streams r into a partial file, checking it in the same pass: its
// digest against o.want, its length against size (-1 if unknown), and the
// sha256, sha512 and size of the raw image for the agent: those of the
// bytes read for a raw image, of their decompression for a zstd one.
// Nothing is re-read.
func (c *Cache) ingest(ctx context.Context, o origin, r io.Reader, size int64) (ingested, error) {
	// The first bytes tell the format, and so which digests are wanted: of
	// these very bytes, of their decompression, or (for a qcow2) of the
	// conversion that follows.
	var magic [magicLen]byte
	k, err := io.ReadFull(r, magic[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return ingested{}, fmt.Errorf("reading image %s: %w", o.display, err)
	}
	in := ingested{format: detectFormat(magic[:k])}
	// Ironic refuses images whose bytes contradict their declared format
	// (CVE-2024-44082): a qcow2 written to a disk as if raw, or the other
	// way round, is never what the operator meant.
	if !formatAllowed(o.format, in.format) {
		return ingested{}, fmt.Errorf("image %s: declared %s but its content is %s", o.display, o.format, in.format)
	}

	f, err := os.CreateTemp(c.dir, partialPrefix+"*")
	if err != nil {
		return ingested{}, fmt.Errorf("image %s: %w", o.display, err)
	}
	in.path = f.Name()
	fail := func(err error) (ingested, error) {
		f.Close()
		os.Remove(in.path)
		return ingested{}, err
	}

	writers := []io.Writer{f}
	var check, raw256, raw512 hash.Hash
	if o.hasWant {
		// The operator's digest is of the image as published, so of the
		// compressed bytes for a zstd image.
		check = o.want.newHash()
		writers = append(writers, check)
	}
	var unzstd *zstdHasher
	switch in.format {
	case FormatRaw:
		raw256, raw512 = sha256.New(), sha512.New()
		// The operator's hash serves as the raw one of its algorithm.
		switch {
		case check != nil && o.want.algo == "sha256":
			raw256 = check
		case check != nil && o.want.algo == "sha512":
			raw512 = check
		}
		for _, h := range []hash.Hash{raw256, raw512} {
			if h != check {
				writers = append(writers, h)
			}
		}
	case FormatZstd:
		unzstd = newZstdHasher(ctx, c.maxRawBytes)
		writers = append(writers, unzstd)
	}
	limit := c.downloadLimit(in.format)
	readMax := int64(math.MaxInt64)
	if limit >= 0 {
		readMax = limit + 1 // one more byte shows excess
	}
	// The LimitReader also hides the MultiReader's WriteTo, which would
	// bypass our larger buffer.
	src := io.LimitReader(io.MultiReader(bytes.NewReader(magic[:k]), r), readMax)
	n, err := io.CopyBuffer(io.MultiWriter(writers...), src, make([]byte, copyBufSize))
	var zerr error
	if unzstd != nil {
		// Always waited for, so that no decoder outlives the fetch.
		in.sums, in.rawSize, zerr = unzstd.finish(err)
	}
	switch {
	case errors.Is(err, errZstdStopped):
		// The decoder gave up before the download ended (a corrupt stream,
		// a zstd bomb): its reason is the one to give, and the rest of the
		// image is not worth reading.
		if zerr == nil {
			zerr = errors.New("the zstd decoder stopped before the end of the image")
		}
		return fail(fmt.Errorf("image %s: %w", o.display, zerr))
	case err != nil && size >= 0:
		// Among others the unexpected EOF of a body cut short: never
		// taken for the end of the image.
		return fail(fmt.Errorf("reading image %s: cut short after %d of %d bytes: %w", o.display, n, size, err))
	case err != nil:
		return fail(fmt.Errorf("reading image %s: cut short after %d bytes: %w", o.display, n, err))
	case limit >= 0 && n > limit:
		// Before the length check: reading stopped at the limit, short
		// of a Content-Length the limit for qcow2 let through.
		return fail(fmt.Errorf("image %s: over %d bytes: %w (%d bytes)", o.display, limit, ErrTooLarge, c.maxBytes))
	case size >= 0 && n != size:
		return fail(fmt.Errorf("reading image %s: truncated: %d bytes of %d", o.display, n, size))
	}
	// A checksum mismatch comes before a decompression error: it says that
	// the image read is not the one published, which would explain it.
	if check != nil {
		if got := hex.EncodeToString(check.Sum(nil)); got != o.want.hex {
			return fail(fmt.Errorf("image %s: %w", o.display, &ChecksumError{Algo: o.want.algo, Expected: o.want.hex, Actual: got}))
		}
	}
	if zerr != nil {
		return fail(fmt.Errorf("image %s: %w", o.display, zerr))
	}
	// Synced before it is committed: the metadata written next to it
	// vouches for its content after a crash.
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("image %s: %w", o.display, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(in.path)
		return ingested{}, fmt.Errorf("image %s: %w", o.display, err)
	}
	in.size = n
	if raw256 != nil {
		in.sums = rawSums{hex.EncodeToString(raw256.Sum(nil)), hex.EncodeToString(raw512.Sum(nil))}
		in.rawSize = n
	}
	return in, nil
}

// hashFile returns the sha256, sha512 and size of the file at path, read
// once.
func hashFile(ctx context.Context, path string) (rawSums, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return rawSums{}, 0, err
	}
	defer f.Close()
	h256, h512 := sha256.New(), sha512.New()
	n, err := io.CopyBuffer(io.MultiWriter(h256, h512), ctxReadCloser{ctx, f}, make([]byte, copyBufSize))
	if err != nil {
		return rawSums{}, 0, err
	}
	return rawSums{hex.EncodeToString(h256.Sum(nil)), hex.EncodeToString(h512.Sum(nil))}, n, nil
}

// ctxReadCloser stops reading a file once ctx is done, as an HTTP body
// does by itself.
type ctxReadCloser struct {
	ctx context.Context
	f   io.ReadCloser
}

func (r ctxReadCloser) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}

func (r ctxReadCloser) Close() error { return r.f.Close() }
