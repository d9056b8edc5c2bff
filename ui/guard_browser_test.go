package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// evilPage is another site's page that tries, through the developer's
// browser, to change the phone and to read its state and session token.
const evilPage = `<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="POST" action="UI/api/compose?phone=phone-0001" enctype="text/plain" target="sink">
<input name='{"app":"demo","kind":"toast","text1":"pwned","x":"' value='"}'></form>
<script>
window.results = {};
(async () => {
  const ui = "UI";
  const tryFetch = async (key, path, init) => {
    try { const r = await fetch(ui + path, Object.assign({credentials: "include"}, init)); results[key] = r.type === "opaque" ? "opaque" : r.status + " " + await r.text(); }
    catch (e) { results[key] = "blocked"; }
  };
  await tryFetch("noCors", "/api/power?phone=phone-0001", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: '{"level":"critical"}'});
  await tryFetch("cors", "/api/power?phone=phone-0001", {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"level":"critical"}'});
  await tryFetch("state", "/api/state?phone=phone-0001", {});
  await tryFetch("session", "/api/session", {});
  document.getElementById("sink").onload = () => { results.form = "loaded"; };
  document.getElementById("f").submit();
  results.done = true;
})();
</script></body></html>`

// await evaluates a promise in the page and returns what it resolves to.
func await[T any](ctx context.Context, js string) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return chromedp.Run(tctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// TestBrowserAttacks drives real Chromium: another site's page (cross-site,
// and on another port of 127.0.0.1, which is the same site) cannot change
// the phone or read its state, and a name rebound to 127.0.0.1 (the
// resolver maps evil.example there) gets 421 for the page and the API. The
// browser first holds a session of the real page, so the attacks run with
// its cookie present wherever the browser sends it.
func TestBrowserAttacks(t *testing.T) {
	ctx := browser(t, chromedp.Flag("host-resolver-rules", "MAP evil.example 127.0.0.1"))
	e := newEnv(t, 1)
	e.open(t, "phone-0001", "demo")
	uiURL, _ := url.Parse(e.url)

	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone=phone-0001")))
	until(t, ctx, "the live event stream", `document.querySelector("#live").textContent === "live"`)
	if ok, err := await[bool](ctx, `fetch("/api/session").then(r => r.ok)`); err != nil || !ok {
		t.Fatalf("the page's session: %v %v", ok, err)
	}

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, strings.ReplaceAll(evilPage, "UI", e.url))
	}))
	t.Cleanup(evil.Close)
	evilURL, _ := url.Parse(evil.URL)
	for _, origin := range []string{"http://evil.example:" + evilURL.Port(), "http://127.0.0.1:" + evilURL.Port()} {
		t.Run(origin, func(t *testing.T) {
			run(t, ctx, chromedp.Navigate(origin+"/"))
			until(t, ctx, "the attacks done", `window.results && results.done === true && results.form === "loaded"`)
			got, err := eval[map[string]any](ctx, `window.results`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %v", origin, got)
			if got["state"] != "blocked" || got["session"] != "blocked" || got["cors"] != "blocked" {
				t.Errorf("another site's page read the UI: %v", got)
			}
		})
	}

	// DNS rebinding: the attacker's name, now pointing at 127.0.0.1, on
	// the UI's own port. To the browser this is evil.example's origin.
	rebound := "http://evil.example:" + uiURL.Port()
	run(t, ctx, chromedp.Navigate(rebound+"/"))
	until(t, ctx, "the 421 page", `document.body.textContent.includes("does not serve host")`)
	for _, js := range []string{
		`fetch("/api/state?phone=phone-0001").then(r => r.status)`,
		`fetch("/api/session").then(r => r.status)`,
		`fetch("/api/power?phone=phone-0001", {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"level":"critical"}'}).then(r => r.status)`,
		`fetch("/metrics").then(r => r.status)`,
	} {
		if status, err := await[int](ctx, js); err != nil || status != http.StatusMisdirectedRequest {
			t.Errorf("%s from the rebound name: %d, %v", js, status, err)
		}
	}

	st, err := e.ui.PhoneState(context.Background(), "phone-0001", e.emu.Phone("phone-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Power != "normal" || len(st.Toasts) != 0 {
		t.Fatalf("an attack acted: power %s, toasts %+v", st.Power, st.Toasts)
	}
	// The real page, back (without the key in its address, as from a
	// bookmark: the browser's session cookie is enough), still changes
	// the phone.
	run(t, ctx, chromedp.Navigate(e.url+"/?phone=phone-0001"))
	until(t, ctx, "the live event stream", `document.querySelector("#live").textContent === "live"`)
	run(t, ctx, chromedp.SetValue(chromedp.CSS("#power"), "low"))
	js(t, ctx, `document.querySelector("#power").dispatchEvent(new Event("change"))`)
	until(t, ctx, "the status bar at low power", `document.querySelector("#sb-power").textContent.includes("low")`)
}

// TestBrowserKey: in a browser that has no session, the page opened without
// its key shows nothing of the phone and says how to get the address; the
// address with the key opens it, and the key leaves the address bar.
func TestBrowserKey(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, 1)
	ch := e.open(t, "phone-0001", "demo")

	run(t, ctx, chromedp.Navigate(e.url+"/?phone=phone-0001"))
	until(t, ctx, "the missing key explained", `!document.querySelector("#nokey").classList.contains("hidden") && document.querySelector("#nokey").textContent.includes("herald ui-url")`)
	if html, err := eval[string](ctx, `document.documentElement.outerHTML`); err != nil || strings.Contains(html, ch.URI) {
		t.Fatalf("the page without its key shows the channel URI (%v)", err)
	}
	for _, js := range []string{`fetch("/api/state?phone=phone-0001").then(r => r.status)`, `fetch("/api/phones").then(r => r.status)`} {
		if status, err := await[int](ctx, js); err != nil || status != http.StatusUnauthorized {
			t.Errorf("%s without the key: %d %v", js, status, err)
		}
	}

	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone=phone-0001")))
	until(t, ctx, "the live event stream", `document.querySelector("#live").textContent === "live"`)
	until(t, ctx, "the channel's URI", `document.querySelector("#channels").textContent.includes(`+strconv.Quote(ch.URI)+`)`)
	if loc, err := eval[string](ctx, `location.href`); err != nil || strings.Contains(loc, "key=") || !strings.Contains(loc, "phone=phone-0001") {
		t.Errorf("address bar after opening: %q %v", loc, err)
	}
	if hidden, err := eval[bool](ctx, `document.querySelector("#nokey").classList.contains("hidden")`); err != nil || !hidden {
		t.Errorf("the missing-key note shows on the opened page (%v)", err)
	}
}
