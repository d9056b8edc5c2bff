package devtls

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TrustHelp names each client's way of trusting the CA with the CA's own
// path, a file that holds that CA, in the words docs/webpush.md shows: its
// table (where the path is written …/ca.pem) and its example output of
// herald run --tls.
func TestTrustHelp(t *testing.T) {
	f := mustEnsure(t, filepath.Join(t.TempDir(), "tls"), t0)
	// The path printed is the file clients are told to load: it must hold
	// the CA that signed the leaf the service serves.
	if err := f.Leaf.CheckSignatureFrom(caAt(t, f.CA)); err != nil {
		t.Fatalf("the leaf does not verify against %s: %v", f.CA, err)
	}
	help := TrustHelp(f.CA)

	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "webpush.md"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		client string
		doc    string // as docs/webpush.md's table writes it
	}{
		{"Node", "NODE_EXTRA_CA_CERTS=…/ca.pem node app.js"},
		{"Go, Python, OpenSSL", "SSL_CERT_FILE=…/ca.pem"},
		{"curl", "curl --cacert …/ca.pem"},
		{"heraldsvc send", "--ca …/ca.pem"},
	}
	for _, tt := range tests {
		if !strings.Contains(string(doc), "`"+tt.doc) {
			t.Errorf("%s: docs/webpush.md no longer shows %q", tt.client, tt.doc)
		}
		want := strings.ReplaceAll(tt.doc, "…/ca.pem", f.CA)
		// Each command ends at the path or goes on after a space, so a
		// longer path that merely begins with the CA's would not pass.
		if !strings.Contains(help, want+" ") && !strings.Contains(help, want+"\n") {
			t.Errorf("%s: help lacks %q:\n%s", tt.client, want, help)
		}
	}

	// The example output in docs/webpush.md is the help's own lines for
	// the path it shows, each after the "# " of a shell transcript.
	const docCA = "/home/you/.local/share/herald/tls/ca.pem"
	for i, line := range strings.SplitN(TrustHelp(docCA), "\n", 3)[:2] {
		if !strings.Contains(string(doc), "\n# "+line+"\n") {
			t.Errorf("docs/webpush.md lacks the help's line %d as printed:\n# %s", i+1, line)
		}
	}
}

// caAt parses the one certificate in the PEM file at path.
func caAt(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTrustHelpQuotesPaths pastes each printed command's path into a
// shell: a data directory with spaces or quotes in its name must still
// reach the command as one argument, the very path.
func TestTrustHelpQuotesPaths(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to paste the lines into")
	}
	tests := []struct {
		path   string
		quoted bool
	}{
		{"/home/you/.local/share/herald/tls/ca.pem", false},
		{"/home/you/My Documents/herald/tls/ca.pem", true},
		{"/home/o'brien/herald/tls/ca.pem", true},
		{`/tmp/a "b" $HOME;x/ca.pem`, true},
		{"/tmp/tab\there/ca.pem", true},
	}
	for _, tt := range tests {
		help := TrustHelp(tt.path)
		if got := strings.Contains(help, "curl --cacert "+tt.path+" "); got == tt.quoted {
			t.Errorf("%q: printed bare = %v, want %v:\n%s", tt.path, got, !tt.quoted, help)
		}
		// "curl --cacert PATH ..." becomes a shell command printing its
		// third word.
		var line string
		for _, l := range strings.Split(help, "\n") {
			if i := strings.Index(l, "curl --cacert "); i >= 0 {
				line = strings.TrimSuffix(l[i:], " ...")
			}
		}
		out, err := exec.Command(sh, "-c", "set -- "+line+"; printf '%s' \"$3\"; shift 3; printf '%s' $#").Output()
		if err != nil {
			t.Fatalf("%q: sh: %v", tt.path, err)
		}
		if want := tt.path + "0"; string(out) != want {
			t.Errorf("%q: the shell read %q from %q, want the path alone", tt.path, out, line)
		}
	}
}
