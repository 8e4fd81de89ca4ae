package runner

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/agentrpc"
)

// chain returns the certificates ca's server sends: leaf, then the CA.
func chain(t *testing.T, ca *agentrpc.CA) []*x509.Certificate {
	t.Helper()
	tc, err := ca.ServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for _, der := range tc.Certificates[0].Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	return certs
}

func TestVerifyPinned(t *testing.T) {
	ca, err := agentrpc.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := agentrpc.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := hex.DecodeString(ca.Fingerprint())
	good, bad := chain(t, ca), chain(t, other)
	now := time.Now()
	for _, tt := range []struct {
		name  string
		certs []*x509.Certificate
		now   time.Time
		ok    bool
	}{
		{"the pinned CA's server", good, now, true},
		{"another CA's server", bad, now, false},
		// The attack the leaf check is for: anyone can send the pinned
		// CA's (public) certificate after a leaf of their own.
		{"another CA's leaf with the pinned CA appended", append(bad[:1:1], good[1]), now, false},
		{"leaf without the CA", good[:1], now, false},
		{"nothing", nil, now, false},
		{"expired leaf", good, now.AddDate(2, 0, 0), false},
	} {
		err := verifyPinned(tt.certs, fp, tt.now)
		if (err == nil) != tt.ok {
			t.Errorf("%s: verifyPinned = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, errUntrusted) {
			t.Errorf("%s: %v does not wrap errUntrusted", tt.name, err)
		}
	}
	// The CA's own certificate is what the fingerprint is of.
	sum := sha256.Sum256(good[1].Raw)
	if hex.EncodeToString(sum[:]) != ca.Fingerprint() {
		t.Error("the chain's last certificate is not the CA")
	}
}

func TestPinnedTLSRejectsBadFingerprints(t *testing.T) {
	for _, fp := range []string{"", "abcd", "zz" + ca64[2:], ca64 + "00"} {
		if _, err := pinnedTLS(fp, time.Now); err == nil {
			t.Errorf("pinnedTLS(%q) accepted", fp)
		}
	}
	if _, err := pinnedTLS(ca64, time.Now); err != nil {
		t.Error(err)
	}
	if _, err := New(Config{Coordinator: "h:1", CAFingerprint: "nope"}); err == nil {
		t.Error("New accepted a malformed fingerprint")
	}
	if nodeMetadata != agentrpc.NodeMetadata {
		t.Errorf("node metadata key %q, the coordinator reads %q", nodeMetadata, agentrpc.NodeMetadata)
	}
}

const ca64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
