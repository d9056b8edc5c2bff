package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"

	"github.com/heraldpush/herald/internal/devtls"
)

// defaultDevTLSListen is --tls-listen under --tls-self-signed: beside the
// plain listener's default port, on loopback, the only place the
// development certificate is good for.
const defaultDevTLSListen = "127.0.0.1:8443"

// devTLSSetup checks --tls-self-signed's company and returns the directory
// of its CA and certificate; it fills in the TLS listener's default.
func devTLSSetup(tlsListen *string, cert, key, dir, db string) (string, error) {
	if cert != "" || key != "" {
		return "", errors.New("--tls-self-signed makes its own certificate: drop --tls-cert and --tls-key")
	}
	if *tlsListen == "" {
		*tlsListen = defaultDevTLSListen
	}
	host, _, err := net.SplitHostPort(*tlsListen)
	if err != nil {
		return "", fmt.Errorf("--tls-listen %q: %w", *tlsListen, err)
	}
	if !devtls.IsLoopbackHost(host) {
		return "", fmt.Errorf("--tls-listen %q: --tls-self-signed serves loopback only (127.0.0.1, ::1, localhost), the names its certificate is for; elsewhere use --tls-cert and --tls-key", *tlsListen)
	}
	if dir == "" {
		dir = filepath.Join(filepath.Dir(db), "heraldsvc-tls")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--tls-dir: %w", err)
	}
	return abs, nil
}

// printDevTLS tells the user where the development CA is and how each
// kind of client trusts it.
func printDevTLS(w io.Writer, f devtls.Files, tlsURL string) {
	state := "kept from an earlier start"
	if f.NewCA {
		state = "made now; clients that trusted an earlier one must trust this one"
	}
	fmt.Fprintf(w, "development CA %s (%s)\n", f.CA, state)
	io.WriteString(w, devtls.TrustHelp(f.CA))
	fmt.Fprintf(w, "A phone links to this service with: herald run --service %s --service-ca %s\n", tlsURL, f.CA)
}
