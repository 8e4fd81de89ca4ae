package disk

import (
	"slices"
	"strings"

	"github.com/ingot/ingot/proto/agentpb"
)

// Sort orders disks by name as the kernel hands names out, so that "the
// first disk" means what an operator expects: sda … sdz before sdaa, and
// nvme2n1 before nvme10n1.
func Sort(disks []*agentpb.Disk) {
	slices.SortStableFunc(disks, func(a, b *agentpb.Disk) int {
		return compareNames(a.GetName(), b.GetName())
	})
}

// compareNames compares runs of digits by value, and runs of letters of one
// family (sharing at least two leading letters: sdz, sdaa) by length first,
// as the kernel hands those names out; different families alphabetically.
func compareNames(a, b string) int {
	a, b = strings.TrimPrefix(a, "/dev/"), strings.TrimPrefix(b, "/dev/")
	for a != "" && b != "" {
		ra, restA := nextRun(a)
		rb, restB := nextRun(b)
		if c := compareRun(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return len(a) - len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func nextRun(s string) (run, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareRun(a, b string) int {
	switch {
	case isDigit(a[0]) && isDigit(b[0]):
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	case isDigit(a[0]) || isDigit(b[0]):
		return strings.Compare(a, b)
	case commonPrefix(a, b) < 2:
		return strings.Compare(a, b)
	}
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
