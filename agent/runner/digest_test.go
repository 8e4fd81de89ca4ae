package runner

import (
	"testing"

	"github.com/ingot/ingot/proto/agentpb"
)

func TestPickDigest(t *testing.T) {
	both := &agentpb.WriteImage{ChecksumAlgorithm: "sha256", Checksum: "aa", Checksums: map[string]string{"sha256": "aa", "sha512": "bb"}}
	only256 := &agentpb.WriteImage{ChecksumAlgorithm: "sha256", Checksum: "aa"}
	onlyMap := &agentpb.WriteImage{Checksums: map[string]string{"sha512": "bb"}}
	for _, tc := range []struct {
		name     string
		w        *agentpb.WriteImage
		emulated bool
		algo     string
		sum      string
	}{
		{"hardware takes the coordinator's choice", both, false, "sha256", "aa"},
		{"emulated takes sha512", both, true, "sha512", "bb"},
		{"emulated without sha512 offered", only256, true, "sha256", "aa"},
		{"only alternatives", onlyMap, false, "sha512", "bb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			algo, sum := pickDigest(tc.w, tc.emulated)
			if algo != tc.algo || sum != tc.sum {
				t.Errorf("pickDigest = %s %s, want %s %s", algo, sum, tc.algo, tc.sum)
			}
		})
	}
}
