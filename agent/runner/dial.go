package runner

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// dial returns a client connection to the coordinator. gRPC connects
// lazily and reconnects by itself, so one connection serves the agent's
// whole life; failed handshakes show up as Unavailable on the calls.
func dial(cfg Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if !cfg.Insecure {
		tc, err := pinnedTLS(cfg.CAFingerprint, cfg.now)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(cfg.Coordinator, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("dial coordinator %s: %w", cfg.Coordinator, err)
	}
	return conn, nil
}

// pinnedTLS trusts exactly one CA, known by the sha256 fingerprint of its
// certificate from the kernel command line. The agent has no CA bundle and
// no other way to know the coordinator's CA, so the server must send the
// CA certificate in its chain (agentrpc's ServerTLS does); it is accepted
// only if it hashes to the pinned fingerprint, and the leaf only if it
// verifies against that CA alone.
//
// The standard verification is turned off (InsecureSkipVerify) only
// because it wants a root pool the agent cannot have before the handshake;
// VerifyConnection replaces it. VerifyConnection rather than
// VerifyPeerCertificate: it also runs on resumed sessions, so no future
// session cache can bypass the pin.
//
// The host name is not checked: the pinned CA is private to one
// coordinator and signs nothing but its agent endpoint, and the address on
// the command line may be any of the coordinator's names or IPs.
func pinnedTLS(fingerprint string, now func() time.Time) (*tls.Config, error) {
	want, err := hex.DecodeString(strings.ToLower(strings.ReplaceAll(fingerprint, ":", "")))
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("CA fingerprint %q is not a hex sha256", fingerprint)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, want, now())
		},
	}, nil
}

// errUntrusted is wrapped by every pin failure.
var errUntrusted = errors.New("coordinator certificate not trusted")

// verifyPinned checks that certs (leaf first, as the server sent them)
// contain the CA whose certificate hashes to fingerprint, and that the leaf
// chains to that CA, and only to it, as a server certificate valid at now.
func verifyPinned(certs []*x509.Certificate, fingerprint []byte, now time.Time) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: the server sent no certificate", errUntrusted)
	}
	var ca *x509.Certificate
	for _, c := range certs {
		sum := sha256.Sum256(c.Raw)
		if bytes.Equal(sum[:], fingerprint) {
			ca = c
			break
		}
	}
	if ca == nil {
		return fmt.Errorf("%w: no certificate in the server's chain has the pinned CA fingerprint %x", errUntrusted, fingerprint)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// Other certificates the server sent may serve as intermediates, but
	// every chain must end in the pinned CA: it is the only root.
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("%w: the server certificate does not verify against the pinned CA: %w", errUntrusted, err)
	}
	return nil
}
