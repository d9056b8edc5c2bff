package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// MaxURILength is MPNS's limit on a channel URI, in characters.
const MaxURILength = 1024

// tokenChars is the length of a channel token: 24 random bytes (192 bits),
// base64url without padding.
const tokenChars = 32

// checkURIBase makes sure every channel URI the service hands out stays
// within MaxURILength and is an absolute http(s) URL.
func checkURIBase(public, auth string) error {
	for _, b := range []struct{ name, base, path string }{{"public URL", public, ThrottledPath}, {"authenticated URL", auth, UnthrottledPath}} {
		if b.base == "" {
			continue
		}
		u, err := url.Parse(b.base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("server: %s %q is not an absolute http(s) URL", b.name, b.base)
		}
		if b.path == UnthrottledPath && u.Scheme != "https" {
			// Authenticated senders prove themselves with TLS client
			// certificates; an http URI could never be sent to.
			return fmt.Errorf("server: %s %q is not https", b.name, b.base)
		}
		if n := len(strings.TrimRight(b.base, "/")) + len(b.path) + tokenChars; n > MaxURILength {
			return fmt.Errorf("server: %s %q makes %d-character channel URIs; the limit is %d", b.name, b.base, n, MaxURILength)
		}
	}
	return nil
}

// TLSFiles names the PEM files of the TLS listener.
type TLSFiles struct {
	Cert, Key string // the service's certificate chain and key
	// GetCertificate, when set, serves what it returns instead of Cert
	// and Key (a certificate renewed while the service runs).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCA names the CAs whose client certificates authenticated
	// senders present; "" serves TLS without them: devices and
	// unauthenticated senders only.
	ClientCA string
}

// LoadTLS builds the TLS configuration of the TLS listener and the pool
// that verifies senders' certificates (nil without ClientCA). With a pool
// the handshake asks for a client certificate without requiring or
// verifying one, so that a sender without one (or with a bad one) gets
// MPNS's 401 instead of a failed handshake it cannot interpret; devices
// never send one.
func LoadTLS(f TLSFiles) (*tls.Config, *x509.CertPool, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: f.GetCertificate}
	if f.GetCertificate == nil {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("server: loading TLS certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if f.ClientCA == "" {
		return tc, nil, nil
	}
	pem, err := os.ReadFile(f.ClientCA)
	if err != nil {
		return nil, nil, fmt.Errorf("server: reading client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("server: no PEM certificates in client CA file %s", f.ClientCA)
	}
	tc.ClientAuth = tls.RequestClientCert
	return tc, pool, nil
}

var errNoClientCert = errors.New("no client certificate")

// clientName verifies the request's client certificate against the
// configured CAs and returns its CN.
func (s *Server) clientName(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", errNoClientCert
	}
	if s.cfg.ClientCAs == nil {
		return "", errors.New("the service trusts no client CA")
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: s.cfg.ClientCAs, Intermediates: inter,
		// Certificate validity is wall-clock business, not the service's
		// injected clock.
		CurrentTime: time.Now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", fmt.Errorf("client certificate: %w", err)
	}
	return leaf.Subject.CommonName, nil
}

// authenticate checks, before anything else is read, that a request to an
// authenticated (https) channel URI carries a valid client certificate:
// MPNS answered 401 when it did not.
func (s *Server) authenticate(r *http.Request) error {
	if _, authenticated := tokenFromPath(r.URL.Path); !authenticated {
		return nil
	}
	if _, err := s.clientName(r); err != nil {
		return refuse(refUnauthenticated, "authenticated channel: "+err.Error())
	}
	return nil
}

// authorize checks that the sender of a notification to an authenticated
// channel is the service it was registered for: a valid certificate for
// another service is 403.
func (s *Server) authorize(r *http.Request, ch store.Channel) error {
	if ch.ServiceName == "" {
		return nil
	}
	cn, err := s.clientName(r)
	if err != nil {
		return refuse(refUnauthenticated, "authenticated channel: "+err.Error())
	}
	if cn != ch.ServiceName {
		return refuse(refForbidden, fmt.Sprintf("client certificate is for %q, not for this channel's service", cn))
	}
	return nil
}
