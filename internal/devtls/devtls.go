// Package devtls makes and keeps the development TLS of `herald run --tls`
// and `heraldsvc serve --tls-self-signed`: a local CA and a server
// certificate it issued for 127.0.0.1, ::1 and localhost, so that https-only
// senders (npm web-push, browsers' fetch, curl) reach a service on this
// machine once the user trusts the CA.
//
// The CA is name-constrained to those loopback names: a user who adds it
// to a trust store (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE) lets it vouch for
// nothing else, so its key, if it ever leaked, could not impersonate
// another site.
package devtls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// File names inside the directory Ensure keeps.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
	CertFile  = "cert.pem"
	KeyFile   = "key.pem"
)

// Lifetimes. The leaf stays within the 398 days browsers accept for a
// server certificate, and is replaced once less than RenewBefore of it
// remains; the CA is what users trust by hand, so it lasts long.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 397 * 24 * time.Hour
	RenewBefore  = 30 * 24 * time.Hour
)

// ErrCorrupt: a file in the directory is not what Ensure wrote. Nothing is
// overwritten: the CA may be trusted somewhere, so replacing it is the
// user's decision.
var ErrCorrupt = errors.New("devtls: corrupt file")

// ErrKeyExposed: the CA key can be read by others than its owner.
var ErrKeyExposed = errors.New("devtls: the CA key is readable by other users")

// Hosts are the names the leaf certificate is for, and the only ones the
// CA may vouch for.
var Hosts = []string{"127.0.0.1", "::1", "localhost"}

// Files is what Ensure found or made.
type Files struct {
	Dir                  string
	CA, CAKey, Cert, Key string // paths
	CACert, Leaf         *x509.Certificate
	NewCA, NewLeaf       bool // made by this call
}

// IsLoopbackHost says whether host is one of the names the certificate
// covers, or another address in 127.0.0.0/8 (which the CA may vouch for,
// though the leaf names only 127.0.0.1).
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Ensure returns the CA and server certificate kept in dir, making the
// directory (mode 0700) and whatever is missing: a CA when there is none
// (or the old one expires within RenewBefore), a leaf when there is none,
// when it expires within RenewBefore, or when the CA is new. A file that
// does not parse, a key that does not match its certificate, or a CA key
// readable by others is refused with an error naming the file.
func Ensure(dir string, now time.Time) (Files, error) {
	f := Files{Dir: dir, CA: filepath.Join(dir, CAFile), CAKey: filepath.Join(dir, CAKeyFile),
		Cert: filepath.Join(dir, CertFile), Key: filepath.Join(dir, KeyFile)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("devtls: %w", err)
	}
	ca, caKey, err := loadPair(f.CA, f.CAKey, true)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ca = nil
	case err != nil:
		return Files{}, err
	}
	if ca != nil {
		if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			return Files{}, fmt.Errorf("%w: %s is not a CA certificate; remove %s to make a new CA", ErrCorrupt, f.CA, dir)
		}
		if now.Add(RenewBefore).After(ca.NotAfter) {
			ca = nil // expiring: a new one, which the caller reports
		}
	}
	if ca == nil {
		if ca, caKey, err = makeCA(f, now); err != nil {
			return Files{}, err
		}
		f.NewCA = true
	}
	f.CACert = ca

	leaf, _, err := loadPair(f.Cert, f.Key, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		leaf = nil
	case err != nil:
		return Files{}, err
	}
	if leaf != nil && (f.NewCA || !leafFits(leaf, ca, now)) {
		leaf = nil
	}
	if leaf == nil {
		if leaf, err = makeLeaf(f, ca, caKey, now); err != nil {
			return Files{}, err
		}
		f.NewLeaf = true
	}
	f.Leaf = leaf
	return f, nil
}

// leafFits says whether leaf can be served as it is: issued by ca, for
// every host, and not expiring within RenewBefore.
func leafFits(leaf, ca *x509.Certificate, now time.Time) bool {
	if leaf.CheckSignatureFrom(ca) != nil || now.Before(leaf.NotBefore) || now.Add(RenewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, h := range Hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// loadPair reads a certificate and its key. Both missing is
// fs.ErrNotExist; anything else that is not a matching pair is ErrCorrupt.
func loadPair(certFile, keyFile string, private bool) (*x509.Certificate, crypto.Signer, error) {
	certPEM, certErr := os.ReadFile(certFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	if errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		return nil, nil, fs.ErrNotExist
	}
	if certErr != nil {
		return nil, nil, fmt.Errorf("%w: %s (its key %s is there): %v; remove %s to make new ones", ErrCorrupt, certFile, keyFile, certErr, filepath.Dir(certFile))
	}
	if keyErr != nil {
		return nil, nil, fmt.Errorf("%w: %s (its certificate %s is there): %v; remove %s to make new ones", ErrCorrupt, keyFile, certFile, keyErr, filepath.Dir(keyFile))
	}
	if private && runtime.GOOS != "windows" {
		// A CA key others can read lets them issue certificates the
		// user's trust store accepts; refuse rather than serve with it.
		st, err := os.Stat(keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("devtls: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, nil, fmt.Errorf("%w: %s has mode %v; chmod 600 it (or remove its directory to make a new CA)", ErrKeyExposed, keyFile, st.Mode().Perm())
		}
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%w: %s is not a PEM certificate; remove %s to make new ones", ErrCorrupt, certFile, filepath.Dir(certFile))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w; remove %s to make new ones", ErrCorrupt, certFile, err, filepath.Dir(certFile))
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("%w: %s is not a PEM private key; remove %s to make new ones", ErrCorrupt, keyFile, filepath.Dir(keyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w; remove %s to make new ones", ErrCorrupt, keyFile, err, filepath.Dir(keyFile))
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%w: the key in %s is not the key of %s; remove %s to make new ones", ErrCorrupt, keyFile, certFile, filepath.Dir(keyFile))
	}
	return cert, key, nil
}

func makeCA(f Files, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: %w", err)
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "Herald development CA", OrganizationalUnit: []string{host}},
		// An hour back absorbs clocks a little behind this one.
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(CALifetime),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost"},
		PermittedIPRanges: []*net.IPNet{
			{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: making the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: %w", err)
	}
	// The key first: a certificate without its key would be refused as
	// corrupt on the next start.
	if err := writeKey(f.CAKey, key); err != nil {
		return nil, nil, err
	}
	if err := writeAtomic(f.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func makeLeaf(f Files, ca *x509.Certificate, caKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devtls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(LeafLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("devtls: making the server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devtls: %w", err)
	}
	if err := writeKey(f.Key, key); err != nil {
		return nil, err
	}
	if err := writeAtomic(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return cert, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeAtomic replaces path with data: a crash leaves the old file or the
// new one, never half of one (which the next start would refuse).
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return fmt.Errorf("devtls: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("devtls: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("devtls: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devtls: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

// TrustHelp is what to tell a user about the CA at caFile: how each kind
// of client is told to trust it.
func TrustHelp(caFile string) string {
	caFile = shellQuote(caFile)
	var b bytes.Buffer
	b.WriteString("https clients trust the service once told to trust the CA:\n")
	fmt.Fprintf(&b, "  Node (npm web-push):      NODE_EXTRA_CA_CERTS=%s node app.js\n", caFile)
	fmt.Fprintf(&b, "  Go, Python, OpenSSL:      SSL_CERT_FILE=%s ...   (replaces the system's roots for that command)\n", caFile)
	fmt.Fprintf(&b, "  curl:                     curl --cacert %s ...\n", caFile)
	fmt.Fprintf(&b, "  heraldsvc send:           heraldsvc send ... --ca %s\n", caFile)
	b.WriteString("It vouches only for 127.0.0.1, ::1 and localhost.\n")
	return b.String()
}

// shellQuote makes a path one word for a POSIX shell, so that the lines
// TrustHelp prints can be pasted as they are: a data directory under
// "My Documents" would otherwise split in two. A path of only safe
// characters is printed as it is.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Keeper serves the leaf of a directory Ensure keeps, renewing it in place
// once less than RenewBefore of it remains, so that a daemon running for
// longer than the leaf's life never serves an expired certificate. Its
// GetCertificate is a tls.Config's.
type Keeper struct {
	dir string
	now func() time.Time
	log func(msg string, args ...any)

	mu   sync.Mutex
	cert *tls.Certificate
	leaf *x509.Certificate
}

// NewKeeper loads f's leaf. now is the clock renewals are judged by; log,
// if not nil, hears of each renewal and of a renewal that failed (the old
// certificate is served meanwhile, and the next handshake tries again).
func NewKeeper(f Files, now func() time.Time, log func(msg string, args ...any)) (*Keeper, error) {
	k := &Keeper{dir: f.Dir, now: now, log: log}
	if err := k.load(f); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keeper) load(f Files) error {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	k.cert, k.leaf = &cert, f.Leaf
	return nil
}

// GetCertificate returns the current leaf, renewed first if it is due.
func (k *Keeper) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if now.Add(RenewBefore).After(k.leaf.NotAfter) {
		f, err := Ensure(k.dir, now)
		if err == nil {
			err = k.load(f)
		}
		if k.log != nil {
			if err != nil {
				k.log("development certificate not renewed; serving the old one", "dir", k.dir, "not_after", k.leaf.NotAfter, "err", err)
			} else {
				k.log("development certificate renewed", "dir", k.dir, "not_after", k.leaf.NotAfter, "new_ca", f.NewCA)
			}
		}
	}
	return k.cert, nil
}
