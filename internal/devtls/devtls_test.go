package devtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

func mustEnsure(t *testing.T, dir string, now time.Time) Files {
	t.Helper()
	f, err := Ensure(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func pool(t *testing.T, f Files) *x509.CertPool {
	t.Helper()
	pemBytes, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no CA in " + f.CA)
	}
	return p
}

// The leaf verifies against the CA alone for every development host, as a
// server certificate; the CA is a CA, constrained to loopback, and its key
// and the leaf's are the owner's only.
func TestEnsureMakes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f := mustEnsure(t, dir, t0)
	if !f.NewCA || !f.NewLeaf {
		t.Fatalf("first Ensure: new CA %v, new leaf %v", f.NewCA, f.NewLeaf)
	}
	roots := pool(t, f)
	for _, h := range Hosts {
		if _, err := f.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: h, CurrentTime: t0,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("leaf for %s: %v", h, err)
		}
	}
	if err := f.Leaf.VerifyHostname("example.org"); err == nil {
		t.Error("the leaf names example.org")
	}
	if f.Leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(f.Leaf.ExtKeyUsage) != 1 || f.Leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || f.Leaf.IsCA {
		t.Errorf("leaf usage %v %v, CA %v", f.Leaf.KeyUsage, f.Leaf.ExtKeyUsage, f.Leaf.IsCA)
	}
	if got := f.Leaf.NotAfter.Sub(t0); got != LeafLifetime {
		t.Errorf("leaf valid for %v after now, want %v", got, LeafLifetime)
	}
	if !f.CACert.IsCA || !f.CACert.MaxPathLenZero || f.CACert.KeyUsage&x509.KeyUsageCertSign == 0 || !f.CACert.PermittedDNSDomainsCritical {
		t.Errorf("CA: IsCA %v, MaxPathLenZero %v, usage %v, constraints critical %v", f.CACert.IsCA, f.CACert.MaxPathLenZero, f.CACert.KeyUsage, f.CACert.PermittedDNSDomainsCritical)
	}
	if got := f.CACert.NotAfter.Sub(t0); got != CALifetime {
		t.Errorf("CA valid for %v after now, want %v", got, CALifetime)
	}
	if runtime.GOOS != "windows" {
		for file, want := range map[string]os.FileMode{dir: 0o700, f.CAKey: 0o600, f.Key: 0o600, f.CA: 0o644, f.Cert: 0o644} {
			st, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", file, st.Mode().Perm(), want)
			}
		}
	}
}

// The CA's name constraints hold: a certificate it signs for another name
// does not verify, so trusting the CA trusts nothing but this machine.
func TestCAVouchesOnlyForLoopback(t *testing.T) {
	f := mustEnsure(t, t.TempDir(), t0)
	_, caKey, err := loadPair(f.CA, f.CAKey, true)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name string
		tmpl x509.Certificate
		host string
	}{
		{"another DNS name", x509.Certificate{DNSNames: []string{"bank.example"}}, "bank.example"},
		{"a LAN address", x509.Certificate{IPAddresses: []net.IP{net.ParseIP("192.168.1.10")}}, "192.168.1.10"},
		{"a public IPv6 address", x509.Certificate{IPAddresses: []net.IP{net.ParseIP("2001:db8::1")}}, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := tc.tmpl
			tmpl.SerialNumber, tmpl.Subject = serial(), pkix.Name{CommonName: tc.host}
			tmpl.NotBefore, tmpl.NotAfter = t0.Add(-time.Hour), t0.Add(time.Hour)
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			der, err := x509.CreateCertificate(rand.Reader, &tmpl, f.CACert, &key.PublicKey, caKey)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := x509.ParseCertificate(der)
			_, err = c.Verify(x509.VerifyOptions{Roots: pool(t, f), DNSName: tc.host, CurrentTime: t0})
			var cie x509.CertificateInvalidError
			if !errors.As(err, &cie) || cie.Reason != x509.CANotAuthorizedForThisName {
				t.Fatalf("a certificate for %s verified against the development CA: %v", tc.host, err)
			}
		})
	}
}

// A restart reuses both; near the leaf's end a new leaf is made under the
// same CA; near the CA's end both are new.
func TestEnsureReusesAndRenews(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir, t0)
	again := mustEnsure(t, dir, t0.Add(24*time.Hour))
	if again.NewCA || again.NewLeaf || !again.CACert.Equal(first.CACert) || !again.Leaf.Equal(first.Leaf) {
		t.Fatalf("a restart a day later made new: CA %v, leaf %v", again.NewCA, again.NewLeaf)
	}
	late := first.Leaf.NotAfter.Add(-RenewBefore + time.Minute)
	renewed := mustEnsure(t, dir, late)
	if renewed.NewCA || !renewed.NewLeaf || !renewed.CACert.Equal(first.CACert) || renewed.Leaf.Equal(first.Leaf) {
		t.Fatalf("near the leaf's end: new CA %v, new leaf %v", renewed.NewCA, renewed.NewLeaf)
	}
	if _, err := renewed.Leaf.Verify(x509.VerifyOptions{Roots: pool(t, first), DNSName: "localhost", CurrentTime: late}); err != nil {
		t.Fatalf("the renewed leaf under the old CA: %v", err)
	}
	end := first.CACert.NotAfter.Add(-RenewBefore + time.Minute)
	fresh := mustEnsure(t, dir, end)
	if !fresh.NewCA || !fresh.NewLeaf || fresh.CACert.Equal(first.CACert) {
		t.Fatalf("near the CA's end: new CA %v, new leaf %v", fresh.NewCA, fresh.NewLeaf)
	}
	// A leaf the CA did not issue (its files replaced by another
	// directory's) is replaced too.
	other := mustEnsure(t, t.TempDir(), t0)
	for src, dst := range map[string]string{other.Cert: fresh.Cert, other.Key: fresh.Key} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if f := mustEnsure(t, dir, end); !f.NewLeaf || f.Leaf.CheckSignatureFrom(fresh.CACert) != nil {
		t.Fatalf("a leaf from another CA was kept: new leaf %v", f.NewLeaf)
	}
}

// A file that is not what Ensure wrote is refused with an error naming it,
// and nothing is overwritten.
func TestEnsureRefusesCorruptFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		data string // "" removes the file
		want error
	}{
		{"CA not PEM", CAFile, "garbage", ErrCorrupt},
		{"CA truncated", CAFile, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", ErrCorrupt},
		{"CA key not PEM", CAKeyFile, "garbage", ErrCorrupt},
		{"CA key missing", CAKeyFile, "", ErrCorrupt},
		{"CA cert missing", CAFile, "", ErrCorrupt},
		{"leaf not PEM", CertFile, "\x00\x01", ErrCorrupt},
		{"leaf key missing", KeyFile, "", ErrCorrupt},
		{"CA key of another CA", CAKeyFile, "other", ErrCorrupt},
		{"CA cert is the leaf", CAFile, "leaf", ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := mustEnsure(t, dir, t0)
			path := filepath.Join(dir, tc.file)
			switch tc.data {
			case "":
				os.Remove(path)
			case "other":
				o := mustEnsure(t, t.TempDir(), t0)
				b, _ := os.ReadFile(o.CAKey)
				os.WriteFile(path, b, 0o600)
			case "leaf":
				b, _ := os.ReadFile(f.Cert)
				os.WriteFile(path, b, 0o644)
				// The leaf's key beside it, so only "not a CA" is wrong.
				k, _ := os.ReadFile(f.Key)
				os.WriteFile(f.CAKey, k, 0o600)
			default:
				os.WriteFile(path, []byte(tc.data), 0o600)
			}
			before, _ := os.ReadFile(path)
			_, err := Ensure(dir, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Ensure: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("the error %q does not name the directory", err)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("%s was overwritten", tc.file)
			}
		})
	}
}

func TestEnsureRefusesReadableCAKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	dir := t.TempDir()
	f := mustEnsure(t, dir, t0)
	if err := os.Chmod(f.CAKey, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, t0); !errors.Is(err, ErrKeyExposed) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Ensure with a world-readable CA key: %v", err)
	}
}

// A TLS server with the leaf is reached by a client trusting only the CA,
// by each name the leaf is for.
func TestServeWithLeaf(t *testing.T) {
	f := mustEnsure(t, t.TempDir(), time.Now())
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// The refused handshake below is expected; its log line is not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, f)}}}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		res, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("https://%s: %v", host, err)
		}
		res.Body.Close()
	}
	// Without the CA the same server is refused.
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("a client with the system's roots trusted the development certificate")
	}
}

// A Keeper serves the leaf until it is due, then a renewed one under the
// same CA, without a restart; a renewal that fails serves the old one and
// says so.
func TestKeeperRenewsInPlace(t *testing.T) {
	dir := t.TempDir()
	f := mustEnsure(t, dir, t0)
	now := t0
	var logged []string
	k, err := NewKeeper(f, func() time.Time { return now }, func(msg string, args ...any) { logged = append(logged, msg) })
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c, err := k.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(t, f), DNSName: "localhost", CurrentTime: now}); err != nil {
			t.Fatalf("the served leaf at %v: %v", now, err)
		}
		return leaf.SerialNumber.String()
	}
	first := serial()
	now = f.Leaf.NotAfter.Add(-RenewBefore - time.Minute)
	if serial() != first || len(logged) != 0 {
		t.Fatalf("renewed before it was due: %v", logged)
	}
	now = f.Leaf.NotAfter.Add(-RenewBefore + time.Minute)
	second := serial()
	if second == first || len(logged) != 1 || logged[0] != "development certificate renewed" {
		t.Fatalf("not renewed when due: %v", logged)
	}
	if serial() != second || len(logged) != 1 {
		t.Fatalf("renewed twice: %v", logged)
	}

	// The directory broken while running: the old leaf is served, and
	// each handshake past its due time tries again.
	os.WriteFile(filepath.Join(dir, CAFile), []byte("garbage"), 0o644)
	k2, err := NewKeeper(mustEnsure(t, t.TempDir(), t0), func() time.Time { return now }, func(msg string, args ...any) { logged = append(logged, msg) })
	if err != nil {
		t.Fatal(err)
	}
	k2.dir = dir
	c, err := k2.GetCertificate(nil)
	if err != nil || c == nil || logged[len(logged)-1] != "development certificate not renewed; serving the old one" {
		t.Fatalf("a failed renewal: %v, %v, %v", c, err, logged)
	}
}
