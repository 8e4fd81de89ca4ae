package imagecache

import (
	"errors"
	"strings"
	"testing"
)

func TestChecksums(t *testing.T) {
	srv := newImageServer(t)
	data := randBytes(mib, 20)
	other := randBytes(1000, 21)
	url := srv.add("/img", data)
	for _, tt := range []struct {
		name     string
		src      Source
		allowMD5 bool
		want     string // error text, or "" for success
	}{
		{name: "sha256", src: Source{Checksum: sha256Hex(data)}},
		{name: "sha256 upper case", src: Source{Checksum: strings.ToUpper(sha256Hex(data))}},
		{name: "sha512", src: Source{Checksum: sha512Hex(data)}},
		{name: "sha256 prefix", src: Source{Checksum: "sha256:" + sha256Hex(data)}},
		{name: "sha512 prefix", src: Source{Checksum: "SHA512:" + sha512Hex(data)}},
		{name: "os_hash sha256", src: Source{HashAlgo: "sha256", HashValue: sha256Hex(data)}},
		{name: "os_hash preferred over checksum", src: Source{HashAlgo: "sha512", HashValue: sha512Hex(data), Checksum: md5Hex(other)}},
		{name: "md5 allowed", src: Source{Checksum: md5Hex(data)}, allowMD5: true},
		{name: "md5 refused", src: Source{Checksum: md5Hex(data)}, want: "md5 image checksums are refused"},
		{name: "md5 prefix refused", src: Source{Checksum: "md5:" + md5Hex(data)}, want: "md5 image checksums are refused"},
		{name: "os_hash md5 refused", src: Source{HashAlgo: "md5", HashValue: md5Hex(data)}, want: "md5 image checksums are refused"},
		{name: "missing", src: Source{}, want: ErrChecksumRequired.Error()},
		{name: "os_hash half given", src: Source{HashAlgo: "sha256"}, want: "must be given together"},
		{name: "bad length", src: Source{Checksum: sha256Hex(data)[:40]}, want: "40 hex digits"},
		{name: "bad length prefixed", src: Source{Checksum: "sha512:" + sha256Hex(data)}, want: "want 128 hex digits"},
		{name: "not hex", src: Source{Checksum: strings.Repeat("g", 64)}, want: "not hex"},
		{name: "sha1", src: Source{Checksum: "sha1:" + strings.Repeat("a", 40)}, want: `algorithm "sha1" is not supported`},
		{name: "checksum URL", src: Source{Checksum: "http://example.invalid/SHA256SUMS"}, want: "checksum URLs are not supported"},
		{name: "unknown disk format", src: Source{Checksum: sha256Hex(data), DiskFormat: "vmdk"}, want: "not supported"},
		{name: "wrong sha256", src: Source{Checksum: sha256Hex(other)}, want: "sha256 expected " + sha256Hex(other) + ", got " + sha256Hex(data)},
		{name: "wrong sha512", src: Source{HashAlgo: "sha512", HashValue: sha512Hex(other), Checksum: sha256Hex(data)}, want: "sha512 expected " + sha512Hex(other) + ", got " + sha512Hex(data)},
		{name: "wrong md5", src: Source{Checksum: md5Hex(other)}, allowMD5: true, want: "md5 expected " + md5Hex(other) + ", got " + md5Hex(data)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, Config{AllowMD5: tt.allowMD5})
			src := tt.src
			src.URL = url
			before := srv.count("/img")
			e, err := c.Get(t.Context(), src)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkEntry(t, c, e, data)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get: %v, want an error with %q", err, tt.want)
			}
			var ce *ChecksumError
			if errors.As(err, &ce) {
				// A mismatch is found only after the download...
				if srv.count("/img") != before+1 {
					t.Fatal("no download before the mismatch")
				}
			} else if srv.count("/img") != before {
				// ...any other checksum problem before it.
				t.Fatal("a refused checksum still downloaded the image")
			}
			if files := dirFiles(t, c.dir); len(files) != 0 {
				t.Fatalf("left in the cache: %v", files)
			}
			if st := c.Stats(); st.Entries != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestChecksumRequiredIsSentinel(t *testing.T) {
	c := newCache(t, Config{})
	_, err := c.Get(t.Context(), Source{URL: "http://127.0.0.1:1/img"})
	if !errors.Is(err, ErrChecksumRequired) {
		t.Fatalf("Get: %v", err)
	}
}
