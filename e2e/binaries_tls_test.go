package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/testenv"
)

var svcTLS = regexp.MustCompile(`^TLS on (127\.0\.0\.1:\d+) \(devices dial wss://`)

// TestBinariesDeviceTLS runs heraldsvc with a TLS listener and no client
// CA, and herald daemons dialling it over https, as separate processes:
// one trusting the test's CA and pinning the service's key gets its
// toast; one with only the system's roots never connects.
func TestBinariesDeviceTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	herald, heraldsvc := buildBinaries(t, t.TempDir())
	pki := testenv.NewPKI(t)
	dir := t.TempDir()
	env := childEnv()

	svc := startProc(t, env, heraldsvc, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "heraldsvc.db"),
		"--tls-listen", "127.0.0.1:0", "--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile)
	if first := svc.readLine(t); svcListening.FindStringSubmatch(first) == nil {
		t.Fatalf("heraldsvc serve printed %q first", first)
	}
	second := svc.readLine(t)
	m := svcTLS.FindStringSubmatch(second)
	if m == nil {
		t.Fatalf("heraldsvc serve printed %q second, want its TLS address", second)
	}
	url := "https://" + m[1]
	spki := sha256.Sum256(pki.Leaf.RawSubjectPublicKeyInfo)

	socket := testenv.SocketPath(t)
	startProc(t, env, herald, "run", "--service", url, "--service-ca", pki.CAFile, "--service-pin", "sha256/"+hex.EncodeToString(spki[:]),
		"--data", filepath.Join(dir, "trusting"), "--socket", socket, "--config", daemonConfig(t))
	waitLinkUp(t, socket)
	var ch openOutput
	cliJSON(t, &ch, env, herald, "open", "demo", "--toast", "--json", "--socket", socket)
	mustSend(t, env, heraldsvc, "toast", ch.URI, "--text1", "over", "--text2", "TLS")
	testenv.Eventually(t, 15*time.Second, "toast shown", func() bool {
		var toasts []toastOutput
		cliJSON(t, &toasts, env, herald, "toasts", "--json", "--socket", socket)
		return len(toasts) == 1 && toasts[0].Text1 == "over"
	})

	untrusting := testenv.SocketPath(t)
	startProc(t, env, herald, "run", "--service", url, "--data", filepath.Join(dir, "untrusting"), "--socket", untrusting,
		"--config", daemonConfig(t))
	c := app.NewClient(untrusting)
	var st app.Status
	testenv.Eventually(t, 15*time.Second, "a failed TLS handshake", func() bool {
		var err error
		st, err = c.Status(context.Background())
		return err == nil && st.LastError != ""
	})
	if st.Connected || st.DeviceID != "" || !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("daemon without the CA: connected %v, device %q, last error %q; want a certificate error", st.Connected, st.DeviceID, st.LastError)
	}
}
