package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
)

const chromium = "/usr/bin/chromium"

// browser starts headless Chromium for one test.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test skipped: %s is missing (apt-get install -y chromium; .ci/run installs it)", chromium)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1180, 800),
	}
	opts = append(opts, extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// The browser lives as long as the context of the first Run, which
	// therefore has no timeout; each later step gets one.
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// until polls a JavaScript condition in the page (the page's own updates
// arrive asynchronously over server-sent events).
func until(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var ok bool
	var err error
	for {
		tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		ok, err = chromedp.Run(tctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(10*time.Second)))
		cancel()
		// A poll begun while the page was still loading (or reloading
		// itself) loses its JavaScript context when the new document
		// replaces it; it is started again in the new one.
		if err == nil || !(strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "navigated or closed")) ||
			time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !ok {
		html, _ := eval[string](ctx, `document.querySelector("#live").outerHTML + document.querySelector("#toasts").outerHTML + document.querySelector("#phone").outerHTML`)
		t.Fatalf("page never showed %s (%v); page:\n%.4000s", what, err, html)
	}
}

func eval[T any](ctx context.Context, js string) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return chromedp.Run(tctx, chromedp.Evaluate[T](js))
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func js(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	if _, err := eval[any](ctx, expr); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
}

// TestStartScreen is the whole trip a developer watches: a toast and a tile
// update sent through the MPNS endpoint appear on the phone, and at low
// power the compose panel shows the service answering Suppressed.
func TestStartScreen(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, 2)
	ch := e.open(t, "phone-0002", "demo")

	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone=phone-0002")))
	until(t, ctx, "the live event stream", `document.querySelector("#live").textContent === "live"`)
	until(t, ctx, "the channel list", `document.querySelector('#channels tr[data-app="demo"] .uri')?.textContent === `+jsString(ch.URI))
	// The heartbeat line shows the ceiling in force (docs/power.md); a
	// phone that has just connected is still learning, with no probe due.
	until(t, ctx, "the heartbeat line", `document.querySelector("#heartbeat-info").textContent === "heartbeat 4m0s (learning), ceiling 1h58m0s · next probe - · 0 failed in 24 h"`)

	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Hello", Text2: "from Herald", Param: "/Inbox.xaml?id=7"}).XML())
	testenv.Eventually(t, 10*time.Second, "toast stored", func() bool {
		toasts, _ := e.emu.Phone("phone-0002").Toasts(context.Background(), "", 0)
		return len(toasts) == 1
	})
	until(t, ctx, "the toast banner", `(() => { const b = document.querySelector("#banner");
		return !b.classList.contains("hidden") && b.querySelector(".text1").textContent === "Hello" &&
			b.querySelector(".text2").textContent === "from Herald" })()`)
	until(t, ctx, "the toast in the history", `document.querySelector("#toasts li b")?.textContent === "Hello"`)
	run(t, ctx, chromedp.Click(chromedp.CSS("#banner")))
	until(t, ctx, "the deep link on tap", `document.querySelector("#deeplink").textContent.includes("/Inbox.xaml?id=7")`)

	send(t, ch.URI, mpns.KindTile, tile("", "", "Title", "Inbox", "Count", "5"))
	until(t, ctx, "the tile's count and title", `(() => { const t = document.querySelector('.tile[data-app="demo"]');
		return t && t.querySelector(".count")?.textContent === "5" && t.querySelector(".title")?.textContent === "Inbox" })()`)

	// Power low through the page's own control.
	run(t, ctx, chromedp.SetValue(chromedp.CSS("#power"), "low"))
	js(t, ctx, `document.querySelector("#power").dispatchEvent(new Event("change"))`)
	testenv.Eventually(t, 10*time.Second, "power low on the phone", func() bool {
		st, err := e.emu.Phone("phone-0002").Status(context.Background())
		return err == nil && st.Power == "low"
	})
	until(t, ctx, "the status bar at low power", `document.querySelector("#sb-power").textContent.includes("low")`)
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS("#compose-app"), "demo"),
		chromedp.SetValue(chromedp.CSS(`#compose input[name="text1"]`), "Quiet"),
		chromedp.Click(chromedp.CSS("#compose-send")))
	until(t, ctx, "Suppressed in the compose panel", `document.querySelector("#result-notification").textContent === "Suppressed" &&
		document.querySelector("#result-status").textContent === "200"`)
	if toasts, _ := e.emu.Phone("phone-0002").Toasts(context.Background(), "", 0); len(toasts) != 1 {
		t.Fatalf("%d toasts stored; the suppressed one must not be", len(toasts))
	}
}

// A page just loaded shows no banner for a toast that came before it;
// with ?banner=last it shows the newest toast's, as if it had just arrived
// (docs/emulator.md, Screenshots).
func TestBannerLast(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, 1)
	ch := e.open(t, "phone-0001", "demo")
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Older", Text2: "first"}).XML())
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Newest", Text2: "second"}).XML())
	testenv.Eventually(t, 10*time.Second, "toasts stored", func() bool {
		toasts, _ := e.emu.Phone("phone-0001").Toasts(context.Background(), "", 0)
		return len(toasts) == 2
	})

	history := `document.querySelectorAll("#toasts li").length === 2 && document.querySelector("#toasts li b")?.textContent === "Newest"`
	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone=phone-0001")))
	until(t, ctx, "the toasts in the history", history)
	if hidden, err := eval[bool](ctx, `document.querySelector("#banner").classList.contains("hidden")`); err != nil || !hidden {
		t.Fatalf("a freshly loaded page shows a banner (hidden %v, %v)", hidden, err)
	}

	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone=phone-0001&banner=last")))
	until(t, ctx, "the toasts in the history", history)
	until(t, ctx, "the newest toast's banner", `(() => { const b = document.querySelector("#banner");
		return !b.classList.contains("hidden") && b.querySelector(".text1").textContent === "Newest" &&
			b.querySelector(".text2").textContent === "second" })()`)
}

// TestTileTemplates renders every template from the phone's stored state
// (the page is loaded after the updates) and checks the DOM.
func TestTileTemplates(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, 1)
	const phone = "phone-0001"
	img := imageServer(t)

	send(t, e.open(t, phone, "weather").URI, mpns.KindTile, tile("", "",
		"Title", "Weather", "Count", "7", "BackTitle", "Tomorrow", "BackContent", "Sunny, 21°"))
	flip := e.open(t, phone, "photos", img.URL)
	send(t, flip.URI, mpns.KindTile, tile("", "FlipTile", "Title", "Photos", "BackgroundImage", img.URL+"/front.png",
		"WideBackContent", "12 new photos", "BackContent", "12 new"))
	send(t, e.open(t, phone, "mail").URI, mpns.KindTile, tile("", "IconicTile", "Title", "Mail", "Count", "0",
		"IconImage", "/Assets/mail.png", "WideContent1", "Lunch?", "WideContent2", "Re: report", "BackgroundColor", "#FF8CBF26"))
	send(t, e.open(t, phone, "travel").URI, mpns.KindTile, tile("", "CycleTile", "Title", "Travel", "Count", "2",
		"CycleImage1", "/Assets/a.png", "CycleImage2", "/Assets/b.png", "CycleImage3", "/Assets/c.png"))
	// A secondary tile, pinned so that its update is delivered.
	if _, err := e.emu.Phone(phone).Pin(context.Background(), "photos", "/Album.xaml?id=3"); err != nil {
		t.Fatal(err)
	}
	send(t, flip.URI, mpns.KindTile, tile("/Album.xaml?id=3", "FlipTile", "Title", "Holiday", "Count", "3"))
	// An image from a domain the tile is no longer bound to is not fetched.
	news := e.open(t, phone, "news", img.URL)
	send(t, news.URI, mpns.KindTile, tile("", "", "Title", "News", "BackgroundImage", img.URL+"/news.png"))
	testenv.Eventually(t, 10*time.Second, "the news tile applied before its binding changes", func() bool {
		tiles, err := e.emu.Phone(phone).Tiles(context.Background(), "news")
		return err == nil && len(tiles) == 1
	})
	e.open(t, phone, "news", "http://cdn.example.com")
	deadline := time.Now().Add(10 * time.Second)
	for {
		tiles, err := e.emu.Phone(phone).Tiles(context.Background(), "")
		if err == nil && len(tiles) == 6 {
			break
		}
		if time.Now().After(deadline) {
			st, _ := e.emu.Phone(phone).Status(context.Background())
			t.Fatalf("tiles stored: %+v (%v); counters %v", tiles, err, st.Counters)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The Iconic tile wide, to show its content lines.
	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone="+phone)))
	js(t, ctx, `localStorage.setItem("herald.size|phone-0001|mail|", "wide")`)
	run(t, ctx, chromedp.Reload())
	until(t, ctx, "six tiles", `document.querySelectorAll(".tile").length === 6`)

	sel := func(appID, tileID string) string {
		return fmt.Sprintf(`document.querySelector('.tile[data-app="%s"][data-tile-id="%s"]')`, appID, tileID)
	}
	tests := []struct {
		name, app, tileID string
		check             string // JS over `t`, the tile element
	}{
		{"WP7 front and back", "weather", "", `t.dataset.template === "WP7" && t.dataset.hasBack === "1" &&
			t.querySelector(".front .title").textContent === "Weather" && t.querySelector(".front .count").textContent === "7" &&
			t.querySelector(".back .back-title").textContent === "Tomorrow" && t.querySelector(".back .back-content").textContent === "Sunny, 21°"`},
		{"FlipTile with a bound remote image", "photos", "", `t.dataset.template === "FlipTile" &&
			t.querySelector(".front img.bg").getAttribute("src") === ` + jsString(img.URL+"/front.png") + ` &&
			t.querySelector(".front img.bg").naturalWidth === 2 && t.querySelector(".back .back-content").textContent === "12 new" &&
			!t.querySelector(".count")`},
		{"IconicTile wide, count 0 hides the badge", "mail", "", `t.dataset.template === "IconicTile" && t.dataset.size === "wide" &&
			!t.querySelector(".count") && t.querySelector(".icon").textContent === "mail.png" &&
			[...t.querySelectorAll(".wide-content .line")].map(l => l.textContent).join("|") === "Lunch?|Re: report" &&
			getComputedStyle(t.querySelector(".face.front")).backgroundColor === "rgb(140, 191, 38)"`},
		{"CycleTile cycles its images", "travel", "", `t.dataset.template === "CycleTile" &&
			t.querySelectorAll(".cycle-image").length === 3 && t.querySelectorAll(".cycle-image.active").length === 1 &&
			t.querySelector(".count").textContent === "2" && t.querySelector(".title").textContent === "Travel"`},
		{"secondary tile", "photos", "/Album.xaml?id=3", `t.dataset.template === "FlipTile" && !t.classList.contains("unpinned") &&
			t.querySelector(".tile-label").textContent === "/Album.xaml?id=3" && t.querySelector(".title").textContent === "Holiday" &&
			t.querySelector(".count").textContent === "3"`},
		{"unbound domain: placeholder, no fetch", "news", "", `t.querySelector(".front .ph.blocked") !== null &&
			!t.querySelector("img") && t.querySelector(".title").textContent === "News"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := eval[bool](ctx, `(() => { const t = `+sel(tt.app, tt.tileID)+`; return !!t && (`+tt.check+`) })()`)
			if err != nil || !ok {
				html, _ := eval[string](ctx, `(`+sel(tt.app, tt.tileID)+`)?.outerHTML ?? "missing"`)
				t.Fatalf("tile %s %q: DOM check failed:\n%s", tt.app, tt.tileID, html)
			}
		})
	}
	if n := img.fetched("/news.png"); n != 0 {
		t.Errorf("the image from an unbound domain was fetched %d times", n)
	}
	if path := os.Getenv("HERALD_SCREENSHOT"); path != "" {
		screenshot(t, ctx, e, path)
	}
}

// screenshot writes the README's picture: the start screen with a toast.
func screenshot(t *testing.T, ctx context.Context, e *env, path string) {
	t.Helper()
	ch := e.open(t, "phone-0001", "weather")
	until(t, ctx, "the live event stream", `document.querySelector("#live").textContent === "live"`)
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Weather", Text2: "Rain from 4 pm", Param: "/Today.xaml"}).XML())
	until(t, ctx, "the toast banner", `!document.querySelector("#banner").classList.contains("hidden")`)
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(buf))
}

type imgServer struct {
	*httptest.Server
	mu    chan struct{}
	count map[string]int
}

func (s *imgServer) fetched(path string) int {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.count[path]
}

// imageServer serves a 2x2 PNG on loopback, counting requests.
func imageServer(t *testing.T) *imgServer {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := range 4 {
		m.Set(i%2, i/2, color.RGBA{0xe5, 0x14, 0x00, 0xff})
	}
	var b bytes.Buffer
	png.Encode(&b, m)
	s := &imgServer{mu: make(chan struct{}, 1), count: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu <- struct{}{}
		s.count[r.URL.Path]++
		<-s.mu
		w.Header().Set("Content-Type", "image/png")
		w.Write(b.Bytes())
	}))
	t.Cleanup(s.Close)
	return s
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// TestFirstPaint: the page shows the phone as it is in the very first
// paint, from what its database holds — tiles, toasts with when they were
// sent and delivered, and raw notifications received before the page was
// opened — and a toast banner hides neither the status bar nor the first
// tile.
func TestFirstPaint(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, 2)
	const phone = "phone-0002"
	ch := e.open(t, phone, "demo")
	send(t, ch.URI, mpns.KindTile, tile("", "", "Title", "Inbox", "Count", "5"))
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Earlier", Text2: "before the page"}).XML())
	send(t, ch.URI, mpns.KindRaw, []byte(`{"before":"page"}`))
	testenv.Eventually(t, 10*time.Second, "the tile, toast and raw notification applied", func() bool {
		st, err := e.emu.Phone(phone).Status(context.Background())
		return err == nil && st.Counters["tiles_updated"] == 1 && st.Counters["toasts_shell"] == 1 && st.Counters["raw_dropped"] == 1
	})

	// The browser opens the address with the key once, which starts its
	// session; the page is inlined from then on (a first visit's page
	// fetches the state once the session is there).
	run(t, ctx, chromedp.Navigate(e.pageURL("/?phone=phone-0001")))
	until(t, ctx, "the session", `document.querySelector("#live").textContent === "live"`)
	// Navigate returns once the page has loaded: no polling, no waiting
	// for a fetch. ?device= names the phone as the CLI does.
	run(t, ctx, chromedp.Navigate(e.url+"/?device="+phone))
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	shot, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	rect, err := eval[[]float64](ctx, `(() => { const r = document.querySelector('.tile[data-app="demo"]')?.getBoundingClientRect();
		return r ? [r.left, r.top, r.width, r.height, window.devicePixelRatio] : [] })()`)
	if err != nil || len(rect) != 5 {
		t.Fatalf("no tile in the page right after load (%v)", err)
	}
	if n := tileBlue(t, shot, rect); n < 0.5 {
		t.Fatalf("the screenshot right after load shows the tile's colour over %.0f%% of its place, want most of it", n*100)
	}
	checks := []struct{ what, js string }{
		{"phone-0002 picked", `document.querySelector("#phone-picker").value === "phone-0002" && document.body.dataset.phone === "phone-0002"`},
		{"the tile", `document.querySelector('.tile[data-app="demo"] .count')?.textContent === "5"`},
		{"the toast with when it was sent and delivered", `(() => { const li = document.querySelector("#toasts li");
			return li && li.querySelector("b").textContent === "Earlier" && li.querySelector(".times .sent") !== null &&
				li.querySelector(".times .delivered") !== null })()`},
		{"the raw notification from before the page opened", `(() => { const li = document.querySelector('.raw-app[data-app="demo"] li');
			return li && li.dataset.outcome === "dropped" && li.querySelector("code").textContent === '{"before":"page"}' &&
				li.querySelector(".times .sent") !== null })()`},
	}
	for _, c := range checks {
		if ok, err := eval[bool](ctx, c.js); err != nil || !ok {
			html, _ := eval[string](ctx, `document.querySelector("#phone").outerHTML + document.querySelector("#toasts").outerHTML + document.querySelector("#raw").outerHTML`)
			t.Fatalf("right after load the page lacks %s (%v):\n%.3000s", c.what, err, html)
		}
	}

	until(t, ctx, "the live event stream", `document.querySelector("#live").textContent === "live"`)
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Now", Text2: "a banner"}).XML())
	until(t, ctx, "the toast banner", `!document.querySelector("#banner").classList.contains("hidden")`)
	overlap, err := eval[string](ctx, `(() => {
		const r = (sel) => document.querySelector(sel).getBoundingClientRect();
		const b = r("#banner"), s = r(".statusbar"), t = r('.tile[data-app="demo"]');
		const hits = (x) => b.left < x.right && x.left < b.right && b.top < x.bottom && x.top < b.bottom;
		return (hits(s) ? "status bar " : "") + (hits(t) ? "first tile" : "") })()`)
	if err != nil || overlap != "" {
		t.Fatalf("the toast banner covers the %s (%v)", overlap, err)
	}
}

// tileBlue is the share of the tile's place in a screenshot painted in the
// tiles' accent colour.
func tileBlue(t *testing.T, shot []byte, rect []float64) float64 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	scale := rect[4]
	x0, y0 := int(rect[0]*scale), int(rect[1]*scale)
	x1, y1 := int((rect[0]+rect[2])*scale), int((rect[1]+rect[3])*scale)
	var blue, all int
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			all++
			if r>>8 < 0x40 && g>>8 > 0x80 && g>>8 < 0xc0 && b>>8 > 0xc0 {
				blue++
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(blue) / float64(all)
}

// TestNarrowScreen: at 420 px (a phone's browser) nothing overflows
// sideways, the channels become cards, a channel URI wraps only after its
// separators and never inside its token, primary tiles name their app, and
// one phone shows no phone filter.
func TestNarrowScreen(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, 1)
	ch := e.open(t, "phone-0001", "a-rather-long-app-name")
	send(t, ch.URI, mpns.KindTile, tile("", "FlipTile", "BackContent", "no title"))
	e.open(t, "phone-0001", "demo")

	// A headless window is at least 500 px wide; the viewport is set
	// narrower as a phone's is.
	run(t, ctx, chromedp.EmulateViewport(420, 900), chromedp.Navigate(e.pageURL("/?phone=phone-0001")))
	until(t, ctx, "the tile", `document.querySelector('.tile[data-app="a-rather-long-app-name"]') !== null`)
	checks := []struct{ what, js string }{
		{"a 420 px viewport", `window.innerWidth === 420`},
		{"no sideways scrolling", `document.documentElement.scrollWidth <= window.innerWidth`},
		{"the channels within the window", `[...document.querySelectorAll("#channels td")].every(td => td.getBoundingClientRect().right <= window.innerWidth)`},
		{"each URI part on one line", `(() => { const segs = [...document.querySelectorAll("#channels .uri .seg")];
			return segs.length > 0 && segs.every(s => s.getClientRects().length === 1) })()`},
		{"the URI's token whole", `[...document.querySelectorAll("#channels .uri .seg")].some(s => s.textContent === ` + jsString(ch.URI[strings.LastIndex(ch.URI, "/")+1:]) + `)`},
		{"the URI copied whole", `document.querySelector('#channels tr[data-app="demo"] .uri').textContent.startsWith("http://")`},
		{"the primary tile named by its app", `document.querySelector('.tile[data-app="a-rather-long-app-name"] .tile-label').textContent === "a-rather-long-app-name"`},
		{"no phone filter for one phone", `getComputedStyle(document.querySelector("#phone-filter")).display === "none"`},
	}
	for _, c := range checks {
		if ok, err := eval[bool](ctx, c.js); err != nil || !ok {
			w, _ := eval[string](ctx, `document.documentElement.scrollWidth + " of " + window.innerWidth`)
			t.Errorf("at 420 px: %s fails (%v; width %s)", c.what, err, w)
		}
	}
}
