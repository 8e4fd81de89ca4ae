package imagecache

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// ErrChecksumRequired is returned for a remote image given without a
// checksum: as in Ironic, an image fetched over the network is only
// written to a disk if its digest was known beforehand.
var ErrChecksumRequired = errors.New("a checksum is required for remote images (image_checksum, or image_os_hash_algo and image_os_hash_value)")

// ChecksumError says that the image read does not match the digest given
// for it. Nothing is cached when it happens.
type ChecksumError struct {
	Algo     string // "sha256", "sha512" or "md5"
	Expected string // hex, as given
	Actual   string // hex, as read
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("image checksum mismatch: %s expected %s, got %s", e.Algo, e.Expected, e.Actual)
}

// digest is the digest an image is checked against.
type digest struct {
	algo string // "sha256", "sha512" or "md5"
	hex  string // lower case
}

func (d digest) String() string { return d.algo + ":" + d.hex }

func (d digest) newHash() hash.Hash {
	switch d.algo {
	case "sha512":
		return sha512.New()
	case "md5":
		return md5.New()
	}
	return sha256.New()
}

// hexLen is the length of each supported algorithm's hex digest; bare
// checksums are told apart by it, as Ironic does.
var hexLen = map[string]int{"md5": 32, "sha256": 64, "sha512": 128}

// expectedDigest picks the digest src is verified against: the os_hash
// pair when given (Glance's multihash, which Ironic prefers), otherwise
// Checksum. ok is false when src names no digest at all.
func expectedDigest(src Source, allowMD5 bool) (d digest, ok bool, err error) {
	if src.HashAlgo != "" || src.HashValue != "" {
		if src.HashAlgo == "" || src.HashValue == "" {
			return digest{}, false, errors.New("image_os_hash_algo and image_os_hash_value must be given together")
		}
		d, err := parseDigest(src.HashAlgo, src.HashValue, allowMD5)
		return d, err == nil, err
	}
	sum := strings.TrimSpace(src.Checksum)
	if sum == "" {
		return digest{}, false, nil
	}
	if strings.Contains(sum, "://") {
		// Ironic can fetch a checksum file from a URL; we do not, as
		// that file would come from the same place as the image.
		return digest{}, false, fmt.Errorf("image checksum %q: checksum URLs are not supported, give the digest itself", sum)
	}
	if algo, value, found := strings.Cut(sum, ":"); found {
		d, err := parseDigest(algo, value, allowMD5)
		return d, err == nil, err
	}
	for algo, n := range hexLen {
		if len(sum) == n {
			d, err := parseDigest(algo, sum, allowMD5)
			return d, err == nil, err
		}
	}
	return digest{}, false, fmt.Errorf("image checksum %q: %d hex digits is neither sha256 (64) nor sha512 (128)", sum, len(sum))
}

func parseDigest(algo, value string, allowMD5 bool) (digest, error) {
	algo = strings.ToLower(strings.TrimSpace(algo))
	value = strings.ToLower(strings.TrimSpace(value))
	n, known := hexLen[algo]
	if !known {
		return digest{}, fmt.Errorf("image checksum algorithm %q is not supported (sha256, sha512)", algo)
	}
	if algo == "md5" && !allowMD5 {
		// MD5 collisions are cheap to make: an md5 checksum does not
		// tell the image that was meant from another one.
		return digest{}, errors.New("md5 image checksums are refused: give a sha256 or sha512 digest (or allow md5 in the coordinator's configuration)")
	}
	if len(value) != n {
		return digest{}, fmt.Errorf("image checksum %s:%s: want %d hex digits, have %d", algo, value, n, len(value))
	}
	if _, err := hex.DecodeString(value); err != nil {
		return digest{}, fmt.Errorf("image checksum %s:%s is not hex", algo, value)
	}
	return digest{algo: algo, hex: value}, nil
}
