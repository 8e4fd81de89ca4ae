package tftp

import (
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLen bounds request names. Boot loader names are short; a long
// name is a probe, and refusing it early keeps it out of the logs.
const maxNameLen = 255

// resolve maps a TFTP request name to a path inside root, lexically: it
// touches no file system, so it can be fuzzed. Opening the result still
// goes through an os.Root, which is what stops symbolic links that lead
// out of the root (a check here would race with the file system anyway).
//
// Names are relative slash-separated paths. Absolute names, any ".."
// element (even one that would stay inside, as the request is surely a
// probe), backslashes (a Windows client's separator: a literal byte in a
// Linux name, so accepting it could only confuse), NUL and other control
// characters, invalid UTF-8 and over-long names are refused.
func resolve(root, name string) (string, error) {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
		return "", errBadName
	}
	for _, r := range name {
		if r == '\\' || unicode.IsControl(r) {
			return "", errBadName
		}
	}
	if !filepath.IsLocal(name) {
		return "", errBadName
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", errBadName
		}
	}
	clean := filepath.Clean(name)
	if clean == "." {
		return "", errBadName // the root directory itself
	}
	root = filepath.Clean(root)
	p := filepath.Join(root, clean)
	// Belt and braces: whatever the checks above missed, the result must
	// still be strictly below the root.
	if rel, err := filepath.Rel(root, p); err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", errBadName
	}
	return p, nil
}
