package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestChannelListsAreArrays: a channel's domains and pinned tiles are JSON
// arrays in every answer, empty or not, so that a client in any language
// reads one shape whether the channel was just opened or bound since.
func TestChannelListsAreArrays(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}}}
	for _, step := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/apps/notes/channel", `{}`},
		{http.MethodGet, "/v1/apps/notes/channel", ``},
		{http.MethodPatch, "/v1/apps/notes/channel/bindings", `{"toast":true}`},
	} {
		req, err := http.NewRequest(step.method, "http://herald"+step.path, strings.NewReader(step.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", step.method, step.path, resp.StatusCode, b)
		}
		for _, want := range []string{`"domains":[]`, `"pinned":[]`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s %s: %s lacks %s", step.method, step.path, b, want)
			}
		}
	}
}
