// Package configdrive turns the configdrive of Ironic's deploy request
// (node.instance_info["configdrive"]) into what the agent writes to the
// node: an ISO 9660 image labelled config-2, or the URL it downloads one
// from.
//
// Ironic accepts three forms and so does Build: a URL; a base64-encoded,
// usually gzip-compressed ISO (what `openstack baremetal node deploy
// --config-drive <dir>` sends); and, from API 1.56, an object with
// meta_data, network_data, user_data and vendor_data that the conductor
// builds the ISO from (Ironic's conductor.utils.build_configdrive with
// openstacksdk's configdrive.build).
package configdrive

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// MaxSize is the largest config drive accepted: Ironic's limit
// (MAX_CONFIG_DRIVE_SIZE_MB), and the size of the partition the agent
// makes for it.
const MaxSize = 64 << 20

// Label is the volume identifier cloud-init, Glean and cloudbase-init look
// for.
const Label = "config-2"

// Drive is a config drive ready for the agent: exactly one of ISO (the
// image itself) and URL (where the agent downloads it) is set.
type Drive struct {
	ISO []byte
	URL string
}

// versions are the metadata versions written, as openstacksdk writes them:
// consumers pick "latest", older ones the dated directory.
var versions = []string{"2012-08-10", "latest"}

// Build prepares the config drive v (instance_info["configdrive"] as
// decoded from JSON: a string or an object) of the node nodeUUID, named
// nodeName (may be empty).
func Build(v any, nodeUUID, nodeName string) (Drive, error) {
	var d Drive
	var err error
	switch v := v.(type) {
	case string:
		d, err = fromString(v)
	case map[string]any:
		d, err = fromObject(v, nodeUUID, nodeName)
	case nil:
		err = errors.New("no config drive given")
	default:
		err = fmt.Errorf("a config drive must be a string or an object, not %s", jsonType(v))
	}
	if err != nil {
		return Drive{}, fmt.Errorf("config drive of node %s: %w", nodeUUID, err)
	}
	return d, nil
}

// fromString takes a URL as it is, and otherwise decodes a base64,
// optionally gzip-compressed, ISO image.
func fromString(s string) (Drive, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Drive{}, errors.New("the config drive is an empty string")
	}
	// Ironic tells URLs apart by their scheme, lower-cased.
	if lower := strings.ToLower(s); strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return Drive{}, fmt.Errorf("the config drive URL %q is invalid", s)
		}
		return Drive{URL: s}, nil
	}
	// Encoders wrap lines (base64 without -w0, Python's encodebytes).
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', ' ', '\t':
			return -1
		}
		return r
	}, s)
	if base64.StdEncoding.DecodedLen(len(s)) > 2*MaxSize {
		// gzip output is never much larger than its input, so what decodes
		// to twice the limit is over it, compressed or not: refuse before
		// decoding it all.
		return Drive{}, fmt.Errorf("the config drive is too large: %d bytes of base64 (the limit is %d MiB)", len(s), MaxSize>>20)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return Drive{}, fmt.Errorf("the config drive is neither an http(s) URL nor base64: %w", err)
	}
	iso := raw
	// Ironic's agent uses the decoded bytes as they are when they are not
	// gzip'd; so does this.
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return Drive{}, fmt.Errorf("decompress the config drive: %w", err)
		}
		iso, err = io.ReadAll(io.LimitReader(zr, MaxSize+1))
		if err != nil {
			return Drive{}, fmt.Errorf("decompress the config drive: %w", err)
		}
	}
	if len(iso) > MaxSize {
		return Drive{}, fmt.Errorf("the config drive is larger than %d MiB", MaxSize>>20)
	}
	if !IsISO(iso) {
		return Drive{}, errors.New("the config drive is not an ISO 9660 image (no CD001 signature at byte 32769); " +
			"give a gzip'd, base64-encoded ISO labelled config-2, a URL, or an object")
	}
	return Drive{ISO: iso}, nil
}

// isoMagicOffset is where the first volume descriptor's "CD001" is: after
// the 32 KiB system area and the descriptor's type byte.
const isoMagicOffset = 32769

// IsISO reports whether b starts like an ISO 9660 image.
func IsISO(b []byte) bool {
	return len(b) >= isoMagicOffset+5 && string(b[isoMagicOffset:isoMagicOffset+5]) == "CD001"
}

// fromObject builds the ISO as Ironic's conductor does.
func fromObject(obj map[string]any, nodeUUID, nodeName string) (Drive, error) {
	for k := range obj {
		switch k {
		case "meta_data", "network_data", "user_data", "vendor_data":
		default:
			return Drive{}, fmt.Errorf("invalid config drive key %q: expected meta_data, network_data, user_data or vendor_data", k)
		}
	}
	meta, err := object(obj, "meta_data")
	if err != nil {
		return Drive{}, err
	}
	// Ironic's setdefault: what the request says wins. Copied so that the
	// node's instance_info is left as it was.
	md := make(map[string]any, len(meta)+2)
	for k, v := range meta {
		md[k] = v
	}
	if _, ok := md["uuid"]; !ok && nodeUUID != "" {
		md["uuid"] = nodeUUID
	}
	if _, ok := md["name"]; !ok && nodeName != "" {
		md["name"] = nodeName
	}
	network, err := object(obj, "network_data")
	if err != nil {
		return Drive{}, err
	}
	vendor, err := object(obj, "vendor_data")
	if err != nil {
		return Drive{}, err
	}

	files := map[string][]byte{}
	if files["meta_data.json"], err = json.Marshal(md); err != nil {
		return Drive{}, fmt.Errorf("encode meta_data: %w", err)
	}
	// Empty objects and strings are left out, as openstacksdk leaves out
	// whatever Python finds false.
	if len(network) > 0 {
		if files["network_data.json"], err = json.Marshal(network); err != nil {
			return Drive{}, fmt.Errorf("encode network_data: %w", err)
		}
	}
	if len(vendor) > 0 {
		// vendor_data2.json, not vendor_data.json: openstacksdk's
		// populate_directory writes the operator's vendor data there (the
		// name Nova uses for dynamic vendor data); cloud-init reads both.
		if files["vendor_data2.json"], err = json.Marshal(vendor); err != nil {
			return Drive{}, fmt.Errorf("encode vendor_data: %w", err)
		}
	}
	switch u := obj["user_data"].(type) {
	case nil:
	case string:
		if u != "" {
			files["user_data"] = []byte(u)
		}
	case map[string]any, []any:
		// Ironic JSON-encodes structured user data (Ignition configs).
		if files["user_data"], err = json.Marshal(u); err != nil {
			return Drive{}, fmt.Errorf("encode user_data: %w", err)
		}
	default:
		return Drive{}, fmt.Errorf("config drive user_data must be a string, an object or a list, not %s", jsonType(u))
	}

	total := 0
	for _, b := range files {
		total += len(b) * len(versions)
	}
	if total > MaxSize {
		return Drive{}, fmt.Errorf("the config drive's contents (%d bytes) are larger than %d MiB", total, MaxSize>>20)
	}
	iso, err := buildISO(files)
	if err != nil {
		return Drive{}, fmt.Errorf("build the config drive image: %w", err)
	}
	if len(iso) > MaxSize {
		return Drive{}, fmt.Errorf("the config drive image (%d bytes) is larger than %d MiB", len(iso), MaxSize>>20)
	}
	return Drive{ISO: iso}, nil
}

// object returns obj[key] as a JSON object; absent or null is an empty one.
func object(obj map[string]any, key string) (map[string]any, error) {
	switch v := obj[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("config drive %s must be an object, not %s", key, jsonType(v))
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a Boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// buildISO lays files out under openstack/<version>/ in an ISO labelled
// config-2, as `genisoimage -r -V config-2` does for openstacksdk. Rock
// Ridge is what makes the names readable: plain ISO 9660 level 1 names
// are 8.3 upper case (META_DAT.JSO), which cloud-init cannot find. No
// Joliet (openstacksdk adds -J): `isoinfo -J` reads go-diskfs v1.9.4's
// Joliet names as underscores, worse than none for readers that prefer
// Joliet; Linux consumers use Rock Ridge.
func buildISO(files map[string][]byte) (iso []byte, err error) {
	// go-diskfs stages the tree in a directory and writes the image into
	// a file: both temporary, and both may hold user data (secrets), so
	// both go whatever happens.
	work, err := os.MkdirTemp("", "ingot-configdrive-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	out, err := os.CreateTemp("", "ingot-configdrive-*.iso")
	if err != nil {
		return nil, err
	}
	defer func() {
		out.Close()
		if rmErr := os.Remove(out.Name()); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	fs, err := iso9660.Create(file.New(out, false), 0, 0, 2048, work)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		dir := path.Join("/openstack", v)
		if err := fs.Mkdir(dir); err != nil {
			return nil, err
		}
		for name, content := range files {
			if err := writeFile(fs, path.Join(dir, name), content); err != nil {
				return nil, err
			}
		}
	}
	err = fs.Finalize(iso9660.FinalizeOptions{
		RockRidge:           true,
		VolumeIdentifier:    Label,
		PublisherIdentifier: "ingot",
	})
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	if iso, err = os.ReadFile(out.Name()); err != nil {
		return nil, err
	}
	padLabel(iso)
	return iso, nil
}

// pvdOffset is where the primary volume descriptor starts (sector 16), and
// its volume identifier is 32 bytes at 40 into it.
const (
	pvdOffset   = 32768
	volumeIDOff = pvdOffset + 40
	volumeIDLen = 32
)

// padLabel pads the volume identifier with spaces, as ECMA-119 and
// genisoimage do: go-diskfs pads it with NULs, which blkid forgives but
// other readers show or compare as part of the label.
func padLabel(iso []byte) {
	if len(iso) < volumeIDOff+volumeIDLen || iso[pvdOffset] != 1 || !IsISO(iso) {
		return
	}
	id := iso[volumeIDOff : volumeIDOff+volumeIDLen]
	for i := len(bytes.TrimRight(id, "\x00")); i < len(id); i++ {
		id[i] = ' '
	}
}

func writeFile(fs *iso9660.FileSystem, name string, content []byte) error {
	f, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}
