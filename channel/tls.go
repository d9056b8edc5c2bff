package channel

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrPinMismatch: the service's TLS certificate verified, but neither it
// nor any certificate in its chain matches the configured pin.
var ErrPinMismatch = errors.New("channel: the service's certificate does not match the pin")

// LoadClientTLS is ClientTLS with the CA bundle read from caFile ("" for
// the system's roots).
func LoadClientTLS(caFile, pin string) (*tls.Config, error) {
	var pem []byte
	if caFile != "" {
		var err error
		if pem, err = os.ReadFile(caFile); err != nil {
			return nil, fmt.Errorf("channel: reading service CA: %w", err)
		}
	}
	return ClientTLS(pem, pin)
}

// ClientTLS returns the TLS configuration of the link to an https service.
// caPEM, when not empty, replaces the system's roots: only certificates it
// issued (or that it holds, for a self-signed service) are accepted. pin,
// when not empty, further requires the verified chain to hold a
// certificate whose SHA-256, or whose public key's (SubjectPublicKeyInfo)
// SHA-256, is pin: 64 hex digits or base64, optionally prefixed "sha256/".
// The certificate is always verified; a pin narrows what verifies, it
// never stands in for verification.
func ClientTLS(caPEM []byte, pin string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("channel: no PEM certificates in the service CA bundle")
		}
		tc.RootCAs = pool
	}
	if pin != "" {
		want, err := ParsePin(pin)
		if err != nil {
			return nil, err
		}
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, chain := range cs.VerifiedChains {
				for _, c := range chain {
					spki, raw := sha256.Sum256(c.RawSubjectPublicKeyInfo), sha256.Sum256(c.Raw)
					if bytes.Equal(spki[:], want) || bytes.Equal(raw[:], want) {
						return nil
					}
				}
			}
			return ErrPinMismatch
		}
	}
	return tc, nil
}

// ParsePin reads a SHA-256 pin: 64 hex digits (colons allowed) or base64
// (standard or URL alphabet, padded or not), optionally prefixed "sha256/"
// or "sha256:".
func ParsePin(pin string) ([]byte, error) {
	p := strings.TrimSpace(pin)
	for _, prefix := range []string{"sha256/", "sha256:", "SHA256:"} {
		p = strings.TrimPrefix(p, prefix)
	}
	if h := strings.ReplaceAll(p, ":", ""); len(h) == 2*sha256.Size {
		if b, err := hex.DecodeString(h); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(p); err == nil && len(b) == sha256.Size {
			return b, nil
		}
	}
	return nil, fmt.Errorf("channel: service pin %q is not a SHA-256 in hex or base64", pin)
}
