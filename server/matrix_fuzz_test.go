package server

import (
	"strings"
	"testing"
)

// Whatever a homeserver (or anyone) posts, the gateway's parser answers
// with an error or with 1 to MaxMatrixDevices devices, and a pushkey the
// gateway takes is a plain channel token.
func FuzzParseMatrix(f *testing.F) {
	f.Add([]byte(`{"notification":{"event_id":"$e:example.org","devices":[{"app_id":"org.kde.neochat","pushkey":"http://h/throttledthirdparty/01.00/tok"}]}}`))
	f.Add([]byte(`{"notification":{"devices":[]}}`))
	f.Add([]byte(`{"notification":{"devices":{"pushkey":1}}}`))
	f.Add([]byte(`{"notification":null}`))
	f.Add([]byte(`[]`))
	s := &Server{cfg: Config{PublicURL: "http://h"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseMatrix(body)
		if err != nil {
			return
		}
		if n := len(req.Notification.Devices); n < 1 || n > MaxMatrixDevices {
			t.Fatalf("%d devices passed", n)
		}
		for _, d := range req.Notification.Devices {
			if token, ok := s.matrixToken(d.PushKey); ok {
				if token == "" || len(token) > 256 || strings.Contains(token, "/") {
					t.Fatalf("pushkey %q gave the token %q", d.PushKey, token)
				}
			}
		}
	})
}
