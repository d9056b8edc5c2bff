package daemon

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAppPath: the app id the ownership check reads from a path is the one
// the API's router hands the handler, whatever the escaping, so no path
// makes the check look at one app while the handler acts on another.
func FuzzAppPath(f *testing.F) {
	for _, s := range []string{"/v1/apps/mail/channel", "/v1/apps/mai%6C/channel", "/v1/apps/a%2Fb/channel", "/v1/apps/x/../mail/channel",
		"//v1/apps/mail/channel", "/v1/apps/%zz/channel", "/v1/apps//channel", "/v1/apps/mail/events", "/v1/apps/%2e%2e/channel"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") {
			return
		}
		req, err := http.NewRequest(http.MethodGet, "http://herald"+p, nil)
		if err != nil || req.URL.Host != "herald" {
			return
		}
		var routed, got, gotRest string
		mux := http.NewServeMux()
		for _, rest := range []string{"channel", "events", "channel/bindings", "pins"} {
			mux.HandleFunc("GET /v1/apps/{app}/"+rest, func(w http.ResponseWriter, r *http.Request) {
				routed, got, gotRest = "yes", r.PathValue("app"), rest
			})
		}
		mux.ServeHTTP(httptest.NewRecorder(), req)
		appID, rest, ok := appPath(req)
		if routed != "" && (!ok || appID != got || rest != gotRest) {
			t.Fatalf("path %q: the handler gets app %q (%s), the check reads %q (%q, %v)", p, got, gotRest, appID, rest, ok)
		}
	})
}
