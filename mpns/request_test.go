package mpns

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseClass(t *testing.T) {
	tests := []struct {
		in    string
		kind  Kind
		delay Delay
		err   error
	}{
		{"1", KindTile, Immediate, nil},
		{"11", KindTile, Within450s, nil},
		{"21", KindTile, Within900s, nil},
		{"2", KindToast, Immediate, nil},
		{"12", KindToast, Within450s, nil},
		{"22", KindToast, Within900s, nil},
		{"3", KindRaw, Immediate, nil},
		{"13", KindRaw, Within450s, nil},
		{"23", KindRaw, Within900s, nil},
		{" 2 ", KindToast, Immediate, nil},
		{"\t23", KindRaw, Within900s, nil},
		{"", "", 0, ErrBadClass},
		{"0", "", 0, ErrBadClass},
		{"4", "", 0, ErrBadClass},
		{"10", "", 0, ErrBadClass},
		{"14", "", 0, ErrBadClass},
		{"31", "", 0, ErrBadClass},
		{"02", "", 0, ErrBadClass},
		{"+2", "", 0, ErrBadClass},
		{"2 2", "", 0, ErrBadClass},
		{"toast", "", 0, ErrBadClass},
		{"123", "", 0, ErrBadClass},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			k, d, err := ParseClass(tt.in)
			checkErr(t, err, tt.err, "X-NotificationClass")
			if k != tt.kind || d != tt.delay {
				t.Errorf("ParseClass(%q) = %q, %d; want %q, %d", tt.in, k, d, tt.kind, tt.delay)
			}
			if tt.err == nil {
				if got, want := ClassFor(k, d), strings.TrimSpace(tt.in); fmt.Sprint(got) != want {
					t.Errorf("ClassFor(%q, %d) = %d, want %s", k, d, got, want)
				}
			}
		})
	}
}

func TestClassFor(t *testing.T) {
	tests := []struct {
		kind  Kind
		delay Delay
		want  int
	}{
		{KindToast, Immediate, 2},
		{KindToast, Within450s, 12},
		{KindToast, Within900s, 22},
		{KindTile, Immediate, 1},
		{KindTile, Within900s, 21},
		{KindRaw, Within450s, 13},
		{KindRaw, 60, 0},
		{"badge", Immediate, 0},
	}
	for _, tt := range tests {
		if got := ClassFor(tt.kind, tt.delay); got != tt.want {
			t.Errorf("ClassFor(%q, %d) = %d, want %d", tt.kind, tt.delay, got, tt.want)
		}
	}
}

func TestDelayDuration(t *testing.T) {
	for d, want := range map[Delay]time.Duration{Immediate: 0, Within450s: 450 * time.Second, Within900s: 15 * time.Minute} {
		if got := d.Duration(); got != want {
			t.Errorf("Delay(%d).Duration() = %v, want %v", d, got, want)
		}
	}
}

func TestKindTarget(t *testing.T) {
	for k, want := range map[Kind]string{KindToast: "toast", KindTile: "token", KindRaw: ""} {
		if got := k.Target(); got != want {
			t.Errorf("%q.Target() = %q, want %q", k, got, want)
		}
	}
}

// Bodies as the sender libraries cited in mpns.md build them.
var (
	// jeffwilcox/mpns: declaration, no whitespace, Text1/Text2/Param.
	jeffToast = toastDoc(`<wp:Text1>Score</wp:Text1><wp:Text2>Home 2 - 1 Away</wp:Text2><wp:Param>/Match.xaml?id=42&amp;src=toast</wp:Param>`)
	// jeffwilcox/mpns FlipTile: Template before Id, no Version, a null field sent as an empty Clear.
	jeffFlip = decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Tile Template="FlipTile" Id="/Sec.xaml?x=1">` +
		`<wp:BackgroundImage>http://img.example.com/t.png</wp:BackgroundImage><wp:Count>5</wp:Count>` +
		`<wp:Title Action="Clear"></wp:Title><wp:SmallBackgroundImage>/Assets/small.png</wp:SmallBackgroundImage>` +
		`<wp:WideBackContent>Wide back</wp:WideBackContent></wp:Tile></wp:Notification>`
	// PushSharp (XElement.ToString): no declaration, indented, self-closing Clear elements.
	pushSharpTile = "<wp:Notification xmlns:wp=\"WPNotification\">\r\n  <wp:Tile Id=\"/Sec.xaml?x=1\">\r\n" +
		"    <wp:BackgroundImage>/Assets/bg.png</wp:BackgroundImage>\r\n    <wp:Count Action=\"Clear\" />\r\n" +
		"    <wp:Title>Inbox</wp:Title>\r\n  </wp:Tile>\r\n</wp:Notification>"
	// java-mpns IconicTile: Version 2.0, a space before the closing root tag.
	javaIconic = decl + `<wp:Notification xmlns:wp="WPNotification" Version="2.0"><wp:Tile Id="/" Template="IconicTile">` +
		`<wp:SmallIconImage>/Assets/small.png</wp:SmallIconImage><wp:IconImage>/Assets/icon.png</wp:IconImage>` +
		`<wp:WideContent1>Meeting 10:00</wp:WideContent1><wp:Count>3</wp:Count><wp:Title>Calendar</wp:Title>` +
		`<wp:BackgroundColor>#FF1BA1E2</wp:BackgroundColor></wp:Tile> </wp:Notification>`
	// python-mpns (ElementTree): Sound before Param.
	pythonToast = decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>New mail</wp:Text1>` +
		`<wp:Text2>From Ann</wp:Text2><wp:Sound>Assets/ding.wav</wp:Sound><wp:Param>?folder=inbox</wp:Param></wp:Toast></wp:Notification>`
)

func TestParseRequest(t *testing.T) {
	// A body of exactly MaxBodySize bytes, padded inside the toast.
	exact := toastDoc(`<wp:Text1>x</wp:Text1>`)
	exact = strings.Replace(exact, "<wp:Toast>", "<wp:Toast>"+strings.Repeat(" ", MaxBodySize-len(exact)), 1)
	if len(exact) != MaxBodySize {
		t.Fatalf("padded toast is %d bytes", len(exact))
	}

	tests := []struct {
		name    string
		h       http.Header
		body    string
		kind    Kind
		delay   Delay
		msgID   string
		err     error
		errText string
	}{
		{name: "jeffwilcox toast", h: hdr("Content-Type", "text/xml", "Accept", "application/*", "X-NotificationClass", "2", "X-WindowsPhone-Target", "toast"),
			body: jeffToast, kind: KindToast},
		{name: "jeffwilcox flip tile", h: hdr("Content-Type", "text/xml", "X-NotificationClass", "1", "X-WindowsPhone-Target", "token"),
			body: jeffFlip, kind: KindTile},
		{name: "jeffwilcox raw without target", h: hdr("Content-Type", "text/xml", "X-NotificationClass", "3"),
			body: `{"sync":true}`, kind: KindRaw},
		{name: "pushsharp tile with message id", h: hdr("X-MessageID", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "X-NotificationClass", "11", "X-WindowsPhone-Target", "token"),
			body: pushSharpTile, kind: KindTile, delay: Within450s, msgID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
		{name: "java-mpns iconic", h: hdr("X-WindowsPhone-Target", "token", "X-NotificationClass", "21"),
			body: javaIconic, kind: KindTile, delay: Within900s},
		{name: "python-mpns toast", h: hdr("Content-Type", "text/xml", "Accept", "application/*", "X-NotificationClass", "22", "X-WindowsPhone-Target", "toast"),
			body: pythonToast, kind: KindToast, delay: Within900s},

		// Header names and values in odd case.
		{name: "lower-case names", h: hdr("x-notificationclass", "12", "x-windowsphone-target", "toast", "x-messageid", "m1"),
			body: jeffToast, kind: KindToast, delay: Within450s, msgID: "m1"},
		{name: "upper-case names and target", h: hdr("X-NOTIFICATIONCLASS", "1", "X-WINDOWSPHONE-TARGET", "TOKEN"),
			body: jeffFlip, kind: KindTile},
		{name: "Go canonical names", h: func() http.Header {
			h := http.Header{}
			h.Set(HeaderNotificationClass, "2")
			h.Set(HeaderTarget, "Toast")
			h.Set(HeaderMessageID, "abc")
			return h
		}(), body: jeffToast, kind: KindToast, msgID: "abc"},
		{name: "spaces around values", h: hdr("X-NotificationClass", " 13 ", "X-WindowsPhone-Target", "  "),
			body: "x", kind: KindRaw, delay: Within450s},
		{name: "repeated identical class", h: hdr("X-NotificationClass", "2", "x-notificationclass", "2", "X-WindowsPhone-Target", "toast"),
			body: jeffToast, kind: KindToast},
		{name: "conflicting classes", h: hdr("X-NotificationClass", "2", "x-notificationclass", "12", "X-WindowsPhone-Target", "toast"),
			body: jeffToast, err: ErrBadClass, errText: "conflicting"},
		{name: "conflicting targets", h: hdr("X-WindowsPhone-Target", "toast", "X-WindowsPhone-Target", "token"),
			body: jeffToast, err: ErrBadTarget, errText: "conflicting"},

		// Missing class: the immediate class of the target's family.
		{name: "toast without class", h: hdr("X-WindowsPhone-Target", "toast"), body: jeffToast, kind: KindToast},
		{name: "tile without class", h: hdr("X-WindowsPhone-Target", "token"), body: javaIconic, kind: KindTile},
		{name: "raw without any header", h: nil, body: "\x00\x01binary", kind: KindRaw},
		{name: "empty class is absent", h: hdr("X-NotificationClass", "", "X-WindowsPhone-Target", "token"), body: jeffFlip, kind: KindTile},

		// Bad classes and targets.
		{name: "class 4", h: hdr("X-NotificationClass", "4"), body: "x", err: ErrBadClass, errText: `"4"`},
		{name: "class word", h: hdr("X-NotificationClass", "immediate", "X-WindowsPhone-Target", "toast"), body: jeffToast, err: ErrBadClass},
		// Old PushSharp sends "tile" and "Tile"; python-mpns sends "raw".
		// MPNS documents neither, but the senders meant nothing else.
		{name: "target tile", h: hdr("X-NotificationClass", "1", "X-WindowsPhone-Target", "tile"), body: jeffFlip, kind: KindTile},
		{name: "target Tile", h: hdr("X-NotificationClass", "11", "X-WindowsPhone-Target", "Tile"), body: jeffFlip, kind: KindTile, delay: Within450s},
		{name: "target raw", h: hdr("X-NotificationClass", "3", "X-WindowsPhone-Target", "raw"), body: "x", kind: KindRaw},
		{name: "target RAW without class", h: hdr("X-WindowsPhone-Target", "RAW"), body: "x", kind: KindRaw},
		{name: "target raw, toast class", h: hdr("X-NotificationClass", "2", "X-WindowsPhone-Target", "raw"), body: jeffToast, err: ErrTargetMismatch},
		{name: "target tiles", h: hdr("X-NotificationClass", "1", "X-WindowsPhone-Target", "tiles"), body: jeffFlip, err: ErrBadTarget, errText: `"tiles"`},
		{name: "toast target, tile class", h: hdr("X-NotificationClass", "1", "X-WindowsPhone-Target", "toast"), body: jeffToast,
			err: ErrTargetMismatch, errText: "X-NotificationClass 1 is a tile class but X-WindowsPhone-Target is \"toast\" (toast)"},
		{name: "toast class without target", h: hdr("X-NotificationClass", "2"), body: jeffToast,
			err: ErrTargetMismatch, errText: "X-WindowsPhone-Target is absent (raw)"},
		{name: "tile target, toast body", h: hdr("X-NotificationClass", "1", "X-WindowsPhone-Target", "token"), body: jeffToast,
			err: ErrTargetMismatch, errText: "body is a Toast notification"},
		{name: "toast target, tile body", h: hdr("X-WindowsPhone-Target", "toast"), body: jeffFlip,
			err: ErrTargetMismatch, errText: "body is a Tile notification"},

		// Message ids.
		{name: "message id 64", h: hdr("X-MessageID", strings.Repeat("a", 64)), body: "x", kind: KindRaw, msgID: strings.Repeat("a", 64)},
		{name: "message id 65", h: hdr("X-MessageID", strings.Repeat("a", 65)), body: "x", err: ErrBadMessageID, errText: "65 bytes"},
		{name: "message id control", h: hdr("X-MessageID", "a\tb"), body: "x", err: ErrBadMessageID, errText: "0x09"},
		{name: "message id non-ASCII", h: hdr("X-MessageID", "café"), body: "x", err: ErrBadMessageID},
		{name: "message id printable", h: hdr("x-MessageId", "{id: 7 / ~}"), body: "x", kind: KindRaw, msgID: "{id: 7 / ~}"},

		// Sizes and empties.
		{name: "raw 3072", h: hdr("X-NotificationClass", "3"), body: strings.Repeat("r", 3072), kind: KindRaw},
		{name: "raw 3073", h: hdr("X-NotificationClass", "3"), body: strings.Repeat("r", 3073), err: ErrTooLarge, errText: "3073 bytes"},
		{name: "toast 3072", h: hdr("X-WindowsPhone-Target", "toast"), body: exact, kind: KindToast},
		{name: "toast 3073", h: hdr("X-WindowsPhone-Target", "toast"), body: exact + " ", err: ErrTooLarge},
		{name: "empty raw", h: hdr("X-NotificationClass", "3"), body: "", err: ErrEmptyBody},
		{name: "empty toast", h: hdr("X-WindowsPhone-Target", "toast"), body: "", err: ErrEmptyBody},
		{name: "empty tile", h: hdr("X-WindowsPhone-Target", "token"), body: "", err: ErrEmptyBody},

		// Content-Type is not checked; raw is not parsed.
		{name: "raw json with xml content type", h: hdr("Content-Type", "text/xml; charset=utf-8"), body: `{"a":"<"}`, kind: KindRaw},
		{name: "raw that looks like a DTD", h: nil, body: `<!DOCTYPE x [<!ENTITY a "b">]>`, kind: KindRaw},
		{name: "bad toast xml", h: hdr("X-WindowsPhone-Target", "toast"), body: "<wp:Notification", err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			n, err := ParseRequest(tt.h, body)
			checkErr(t, err, tt.err, tt.errText)
			if tt.err != nil {
				if n != nil {
					t.Errorf("got a notification with the error: %+v", n)
				}
				return
			}
			if n.Kind != tt.kind || n.Delay != tt.delay || n.MessageID != tt.msgID {
				t.Errorf("got kind %q delay %d id %q; want %q %d %q", n.Kind, n.Delay, n.MessageID, tt.kind, tt.delay, tt.msgID)
			}
			if !bytes.Equal(n.Body, body) {
				t.Errorf("body changed: %q", n.Body)
			}
			if len(body) > 0 {
				body[0] ^= 0xff
				if n.Body[0] == body[0] {
					t.Error("Body aliases the caller's buffer")
				}
			}
			if (n.Toast != nil) != (n.Kind == KindToast) || (n.Tile != nil) != (n.Kind == KindTile) {
				t.Errorf("kind %q with toast %v tile %v", n.Kind, n.Toast, n.Tile)
			}
		})
	}
}

// TestParseRequestClassMatrix checks every class against every target.
func TestParseRequestClassMatrix(t *testing.T) {
	bodies := map[Kind]string{KindToast: jeffToast, KindTile: jeffFlip, KindRaw: "raw"}
	targets := map[Kind][]string{KindToast: {"toast", "Toast"}, KindTile: {"token", "TOKEN"}, KindRaw: {"", "absent"}}
	for _, class := range []string{"1", "2", "3", "11", "12", "13", "21", "22", "23"} {
		ck, cd, err := ParseClass(class)
		if err != nil {
			t.Fatal(err)
		}
		for tk, ts := range targets {
			for _, target := range ts {
				h := hdr("X-NotificationClass", class)
				if target != "absent" {
					h["X-WindowsPhone-Target"] = []string{target}
				}
				n, err := ParseRequest(h, []byte(bodies[tk]))
				if tk != ck {
					checkErr(t, err, ErrTargetMismatch, "X-NotificationClass "+class)
					continue
				}
				if err != nil {
					t.Errorf("class %s target %q: %v", class, target, err)
					continue
				}
				if n.Kind != ck || n.Delay != cd {
					t.Errorf("class %s target %q: got %q/%d", class, target, n.Kind, n.Delay)
				}
			}
		}
	}
}

func TestParseRequestPayloadValues(t *testing.T) {
	n, err := ParseRequest(hdr("X-WindowsPhone-Target", "toast"), []byte(jeffToast))
	if err != nil {
		t.Fatal(err)
	}
	want := Toast{Text1: "Score", Text2: "Home 2 - 1 Away", Param: "/Match.xaml?id=42&src=toast"}
	if *n.Toast != want {
		t.Errorf("toast = %+v, want %+v", *n.Toast, want)
	}
	n, err = ParseRequest(hdr("X-WindowsPhone-Target", "token"), []byte(pushSharpTile))
	if err != nil {
		t.Fatal(err)
	}
	if n.Tile.ID != "/Sec.xaml?x=1" || len(n.Tile.Fields) != 3 || !n.Tile.Fields[1].Clear {
		t.Errorf("tile = %+v", n.Tile)
	}
}
