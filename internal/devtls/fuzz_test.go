package devtls

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Whatever the files hold, loading them is a matching pair or ErrCorrupt,
// never a panic or another error.
func FuzzLoadPair(f *testing.F) {
	good := mustEnsureF(f)
	cert, _ := os.ReadFile(good.Cert)
	key, _ := os.ReadFile(good.Key)
	f.Add(cert, key)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), key)
	f.Add(cert, []byte("-----BEGIN PRIVATE KEY-----\n\n-----END PRIVATE KEY-----\n"))
	f.Add(key, cert)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		dir := t.TempDir()
		c, k := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
		if err := os.WriteFile(c, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		got, signer, err := loadPair(c, k, true)
		switch {
		case err == nil:
			if got == nil || signer == nil || !got.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
				t.Fatalf("loaded a pair that does not match: %v", got)
			}
		case !errors.Is(err, ErrCorrupt):
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
	})
}

func mustEnsureF(f *testing.F) Files {
	files, err := Ensure(f.TempDir(), t0)
	if err != nil {
		f.Fatal(err)
	}
	return files
}
