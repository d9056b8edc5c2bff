package mpns

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// fuzzHeaders builds the request headers for one fuzz input. The bits of
// kind choose which headers are present and how their names are spelled:
// bit 0 drops X-NotificationClass, bit 1 drops X-WindowsPhone-Target,
// bit 2 lower-cases the names, bit 3 upper-cases them, and bit 4 sends the
// class string again as X-MessageID.
func fuzzHeaders(kind byte, class, target string) http.Header {
	name := func(s string) string {
		switch {
		case kind&4 != 0:
			return strings.ToLower(s)
		case kind&8 != 0:
			return strings.ToUpper(s)
		}
		return s
	}
	h := http.Header{name("Content-Type"): {"text/xml"}}
	if kind&1 == 0 {
		h[name(HeaderNotificationClass)] = []string{class}
	}
	if kind&2 == 0 {
		h[name(HeaderTarget)] = []string{target}
	}
	if kind&16 != 0 {
		h[name(HeaderMessageID)] = []string{class}
	}
	return h
}

func FuzzParseRequest(f *testing.F) {
	seeds := []struct {
		kind          byte
		class, target string
		body          string
	}{
		{0, "2", "toast", jeffToast},
		{0, "22", "toast", pythonToast},
		{4, "1", "token", jeffFlip},
		{8, "11", "token", pushSharpTile},
		{16, "21", "token", javaIconic},
		{2, "3", "", `{"sync":true}`},
		{1, "", "toast", toastDoc(`<wp:Text1>Quiet</wp:Text1><wp:Sound Silent="true"/>`)},
		{0, "1", "token", tileDoc(` Version="2.0"`, ` Id="/P.xaml" Template="CycleTile"`, `<wp:CycleImage1>/a.png</wp:CycleImage1><wp:Count Action="Clear"/>`)},
		{0, "2", "toast", `<!DOCTYPE n [<!ENTITY x "y">]><Notification><Toast><Text1>&x;</Text1></Toast></Notification>`},
		{0, "12", "TOAST", `<Notification><Toast><Text1><![CDATA[a&b]]></Text1></Toast></Notification>`},
		{0, "4", "raw", "x"},
	}
	for _, s := range seeds {
		f.Add(s.kind, s.class, s.target, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind byte, class, target string, body []byte) {
		h := fuzzHeaders(kind, class, target)
		orig := bytes.Clone(body)
		n, err := ParseRequest(h, body)
		if !bytes.Equal(body, orig) {
			t.Fatal("ParseRequest modified the body")
		}
		if err != nil {
			if n != nil {
				t.Fatalf("notification returned with error %v", err)
			}
			if !errors.Is(err, ErrBadRequest) || !strings.HasPrefix(err.Error(), "mpns: ") {
				t.Fatalf("error %q is not a bad request", err)
			}
		} else {
			if len(body) == 0 || len(body) > MaxBodySize {
				t.Fatalf("accepted a body of %d bytes", len(body))
			}
			if !bytes.Equal(n.Body, body) {
				t.Fatal("Body differs from the request body")
			}
			if ClassFor(n.Kind, n.Delay) == 0 {
				t.Fatalf("accepted kind %q delay %d", n.Kind, n.Delay)
			}
			if (n.Toast != nil) != (n.Kind == KindToast) || (n.Tile != nil) != (n.Kind == KindTile) {
				t.Fatalf("kind %q with toast %v and tile %v", n.Kind, n.Toast, n.Tile)
			}
			if n.Toast != nil {
				checkToastRoundTrip(t, n.Toast)
				if x := n.Toast.XML(); len(x) <= MaxBodySize {
					again, err := ParseRequest(h, x)
					if err != nil {
						t.Fatalf("re-sending XML(): %v\n%s", err, x)
					}
					if *again.Toast != *n.Toast {
						t.Fatalf("re-sent toast %+v, want %+v", *again.Toast, *n.Toast)
					}
				}
			}
			if n.Tile != nil {
				checkTileRoundTrip(t, n.Tile)
			}
		}

		// Exercise the payload parsers whatever the headers said.
		if toast, err := ParseToast(body); err == nil {
			checkToastRoundTrip(t, toast)
		} else if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("ParseToast error %q is not a bad request", err)
		}
		if tile, err := ParseTile(body); err == nil {
			checkTileRoundTrip(t, tile)
		} else if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("ParseTile error %q is not a bad request", err)
		}
	})
}

func checkToastRoundTrip(t *testing.T, toast *Toast) {
	t.Helper()
	x := toast.XML()
	again, err := ParseToast(x)
	if err != nil {
		t.Fatalf("toast %+v: XML() does not parse: %v\n%s", *toast, err, x)
	}
	if *again != *toast {
		t.Fatalf("toast round trip: got %+v, want %+v\n%s", *again, *toast, x)
	}
}

func checkTileRoundTrip(t *testing.T, tile *Tile) {
	t.Helper()
	x := tile.XML()
	again, err := ParseTile(x)
	if err != nil {
		t.Fatalf("tile %+v: XML() does not parse: %v\n%s", *tile, err, x)
	}
	if !reflect.DeepEqual(again, tile) {
		t.Fatalf("tile round trip: got %+v, want %+v\n%s", *again, *tile, x)
	}
	if m := tile.Merge(tile); !reflect.DeepEqual(m, tile) {
		t.Fatalf("tile merged with itself: got %+v, want %+v", *m, *tile)
	}
	var s TileState
	if err := s.Apply(tile); err != nil {
		t.Fatalf("applying a parsed tile to a new state: %v", err)
	}
	if err := s.Apply(tile); err != nil {
		t.Fatalf("applying a parsed tile twice: %v", err)
	}
	for _, u := range tile.RemoteImages() {
		if ImageAllowed(u, nil) {
			t.Fatalf("remote image %q allowed with no bound domains", u)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	cases := []struct {
		name string
		h    http.Header
		body string
	}{
		{"toast", hdr("Content-Type", "text/xml", "X-NotificationClass", "2", "X-WindowsPhone-Target", "toast",
			"X-MessageID", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"), pythonToast},
		{"tile", hdr("Content-Type", "text/xml", "X-NotificationClass", "1", "X-WindowsPhone-Target", "token",
			"X-MessageID", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"), javaIconic},
		{"raw", hdr("Content-Type", "text/xml", "X-NotificationClass", "3",
			"X-MessageID", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"), `{"sync":true,"folder":"inbox","unread":12}`},
	}
	for _, c := range cases {
		body := []byte(c.body)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ParseRequest(c.h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
