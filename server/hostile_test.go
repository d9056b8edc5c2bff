package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// TestHostileInput throws one kind of abuse at a running service per row,
// checks that it is refused with a clear status or close code, and then
// checks that a well-behaved device on the same service still gets its
// notifications.
func TestHostileInput(t *testing.T) {
	e := startEnv(t, server.ServeConfig{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second})
	victim := mustDial(t, e.svc.URL())
	vch := victim.open("victim", "")
	victim.bind(vch.ChannelID, true, false)
	base := e.svc.URL()
	addr := e.svc.Addr().String()

	// A second device whose channel the hostile device goes after.
	owner := mustDial(t, base)
	och := owner.open("mail", "")

	expect := func(t *testing.T, r answer, code int) {
		t.Helper()
		if r.network != nil || r.code != code {
			t.Fatalf("got %d (%s) %v; want %d", r.code, strings.TrimSpace(r.body), r.network, code)
		}
	}
	postV := func(t *testing.T, h http.Header, body string) answer {
		t.Helper()
		return postMPNS(t, nil, http.MethodPost, vch.URI, h, body)
	}
	deep := toastXML[:strings.Index(toastXML, "<wp:Text1>")] + "<wp:Text1>" + strings.Repeat("<a>", 50) + strings.Repeat("</a>", 50) + "</wp:Text1></wp:Toast></wp:Notification>"
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>` +
		`<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>&lol3;</wp:Text1></wp:Toast></wp:Notification>`
	external := `<?xml version="1.0"?><!DOCTYPE n [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		`<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>&x;</wp:Text1></wp:Toast></wp:Notification>`

	// wsClose opens a raw websocket, sends what the row says, and returns
	// the service's close code.
	wsClose := func(t *testing.T, send func(ws *websocket.Conn)) int {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		send(ws)
		return closeCode(t, ws)
	}
	hello := func(ws *websocket.Conn) {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil { // the challenge
			t.Fatalf("no challenge: %v", err)
		}
		b, _ := wire.Encode(wire.Hello{Type: wire.TypeHello, Version: wire.Version})
		ws.WriteMessage(websocket.TextMessage, b)
		if _, _, err := ws.ReadMessage(); err != nil { // the welcome
			t.Fatalf("no welcome: %v", err)
		}
	}

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"body over 3 KB", func(t *testing.T) {
			expect(t, postV(t, rawHeaders(), strings.Repeat("x", 3073)), 400)
		}},
		{"body over 3 KB, chunked with no length", func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() { pw.Write([]byte(strings.Repeat("x", 8000))); pw.Close() }()
			req, _ := http.NewRequest(http.MethodPost, vch.URI, pr)
			req.Header = rawHeaders()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Fatalf("got %d, want 400", resp.StatusCode)
			}
		}},
		{"headers over 1 KB", func(t *testing.T) {
			h := rawHeaders()
			h.Set("X-Padding", strings.Repeat("p", 1024))
			expect(t, postV(t, h, "x"), 400)
		}},
		{"headers far over Go's own limit", func(t *testing.T) {
			h := rawHeaders()
			h.Set("X-Padding", strings.Repeat("p", 16<<10))
			expect(t, postV(t, h, "x"), http.StatusRequestHeaderFieldsTooLarge)
		}},
		{"malformed XML", func(t *testing.T) {
			expect(t, postV(t, mpnsHeaders("toast", "2", ""), `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Toast>`), 400)
		}},
		{"entity expansion", func(t *testing.T) {
			expect(t, postV(t, mpnsHeaders("toast", "2", ""), laughs), 400)
		}},
		{"external entity", func(t *testing.T) {
			expect(t, postV(t, mpnsHeaders("toast", "2", ""), external), 400)
		}},
		{"deep nesting", func(t *testing.T) {
			expect(t, postV(t, mpnsHeaders("toast", "2", ""), deep), 400)
		}},
		{"channel URI of 2,000 characters", func(t *testing.T) {
			expect(t, postRaw(t, base+server.ThrottledPath+strings.Repeat("A", 2000)), 404)
		}},
		{"guessed channel token", func(t *testing.T) {
			last := "A"
			if strings.HasSuffix(vch.URI, last) {
				last = "B"
			}
			expect(t, postRaw(t, vch.URI[:len(vch.URI)-1]+last), 404)
		}},
		{"multicast too long", func(t *testing.T) {
			uris := make([]string, server.DefaultMaxMulticast+1)
			for i := range uris {
				uris[i] = vch.URI
			}
			b, _ := json.Marshal(server.MulticastRequest{Channels: uris, Payload: "x"})
			expect(t, postMPNS(t, nil, http.MethodPost, base+server.MulticastPath, rawHeaders(), string(b)), 400)
		}},
		{"multicast not JSON", func(t *testing.T) {
			expect(t, postMPNS(t, nil, http.MethodPost, base+server.MulticastPath, rawHeaders(), "<channels/>"), 400)
		}},
		{"slowloris: headers never finish", func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nX-NotificationClass: 3\r\n", vch.URI[len(base):], addr)
			// While it dawdles, everyone else is served.
			checkServed(t, victim, vch.URI)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("service did not close the slow connection: %v", err)
			}
		}},
		{"slow body", func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nX-NotificationClass: 3\r\nContent-Length: 100\r\n\r\n0123456789", vch.URI[len(base):], addr)
			checkServed(t, victim, vch.URI)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Fatalf("slow body answered %d, want 400 or a closed connection", resp.StatusCode)
				}
			}
		}},
		{"binary websocket frame", func(t *testing.T) {
			if code := wsClose(t, func(ws *websocket.Conn) { ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}) }); code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"websocket frame not JSON", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) { ws.WriteMessage(websocket.TextMessage, []byte("{hello")) })
			if code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"websocket frame of unknown type after hello", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) {
				hello(ws)
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"notify","notifications":[]}`))
			})
			if code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"websocket frame over the read limit", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) {
				hello(ws)
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","x":"`+strings.Repeat("a", wire.MaxFrameSize)+`"}`))
			})
			if code != websocket.CloseMessageTooBig {
				t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
			}
		}},
		// docs/protocol.md: a frame that breaks the field rules is not
		// answered BadRequest; it closes the connection.
		{"hello sent twice", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) {
				hello(ws)
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","version":1,"last_seq":0}`))
			})
			if code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"register with a bad app name", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) {
				hello(ws)
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"register","req":1,"app":"my app","channel":"default"}`))
			})
			if code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"state with a bad power level", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) {
				hello(ws)
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"state","req":1,"power":"turbo"}`))
			})
			if code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"ack beyond what was sent", func(t *testing.T) {
			code := wsClose(t, func(ws *websocket.Conn) {
				hello(ws)
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","seq":99}`))
			})
			if code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}
		}},
		{"wrong device secret", func(t *testing.T) {
			_, err := dial(t, base, owner.id, "not-the-secret")
			var ce *websocket.CloseError
			if !asClose(err, &ce) || ce.Code != wire.CloseUnauthorized {
				t.Fatalf("hello with a wrong secret: %v; want close %d", err, wire.CloseUnauthorized)
			}
		}},
		{"unknown device id", func(t *testing.T) {
			_, err := dial(t, base, "nobody", "nothing")
			var ce *websocket.CloseError
			if !asClose(err, &ce) || ce.Code != wire.CloseUnauthorized {
				t.Fatalf("hello with an unknown id: %v; want close %d", err, wire.CloseUnauthorized)
			}
		}},
		{"another device's channel", func(t *testing.T) {
			thief := mustDial(t, base)
			if r := thief.bind(och.ChannelID, true, true); r.Code != wire.CodeNotFound {
				t.Fatalf("bind of another device's channel: %+v", r)
			}
			thief.req++
			thief.send(wire.Unregister{Type: wire.TypeUnregister, ReqID: thief.req, ChannelID: och.ChannelID})
			if r := thief.await(thief.req).(*wire.Result); r.Code != wire.CodeNotFound {
				t.Fatalf("unregister of another device's channel: %+v", r)
			}
			// Registering the same app gives the thief its own channel.
			mine := thief.open("mail", "")
			if mine.ChannelID == och.ChannelID || mine.URI == och.URI {
				t.Fatalf("thief got the owner's channel: %+v", mine)
			}
			// The owner's channel is untouched and still delivers.
			mustPost(t, nil, och.URI)
			if n := owner.nextNotification(); n.ChannelID != och.ChannelID {
				t.Fatalf("owner got %+v", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t)
			checkServed(t, victim, vch.URI)
		})
	}
}

// post_ sends a plain raw notification to uri.
func postRaw(t *testing.T, uri string) answer {
	t.Helper()
	return postMPNS(t, nil, http.MethodPost, uri, rawHeaders(), "x")
}

func asClose(err error, ce **websocket.CloseError) bool {
	if err == nil {
		return false
	}
	c, ok := err.(*websocket.CloseError)
	*ce = c
	return ok
}

// checkServed sends the victim a toast and waits for it to arrive.
func checkServed(t *testing.T, victim *device, uri string) {
	t.Helper()
	id := fmt.Sprintf("check-%d", time.Now().UnixNano())
	r := postMPNS(t, nil, http.MethodPost, uri, mpnsHeaders("toast", "2", id), toastXML)
	if statusOf(r) != "200 Received" {
		t.Fatalf("the well-behaved device's sender got %s (%s)", statusOf(r), r.body)
	}
	if n := victim.nextNotification(); n.MessageID != id {
		t.Fatalf("the well-behaved device got %+v, want message %s", n, id)
	}
}
