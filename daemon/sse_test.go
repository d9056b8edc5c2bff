package daemon

import (
	"net/http"
	"net/url"
	"testing"
)

// FuzzEventStreamRequest: whatever an app puts in Accept, Last-Event-ID
// and ?after=, choosing the stream's form and where it resumes never
// panics, and a resume point it accepts is a valid event id.
func FuzzEventStreamRequest(f *testing.F) {
	f.Add("text/event-stream", "41", "")
	f.Add("text/html, text/event-stream;q=0.9", "", "7")
	f.Add("*/*", "-1", "")
	f.Add("text/event-stream", "99999999999999999999", "")
	f.Add(";;;,", " 5 ", "abc")
	f.Fuzz(func(t *testing.T, accept, lastID, after string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: url.Values{"after": {after}}.Encode()}}
		r.Header.Set("Accept", accept)
		r.Header.Set("Last-Event-ID", lastID)
		sse := wantsEventStream(r)
		got, err := streamAfter(r, sse)
		if err == nil && got < 0 {
			t.Fatalf("resume after %d accepted", got)
		}
		if after == "" && !sse && got != 0 {
			t.Fatalf("a websocket resumed from Last-Event-ID: %d", got)
		}
	})
}

// TestEventStreamRequest: the form and the resume point, for the requests
// apps send.
func TestEventStreamRequest(t *testing.T) {
	tests := []struct {
		name, accept, lastID, after string
		sse                         bool
		want                        int64
		bad                         bool
	}{
		{"websocket", "", "", "", false, 0, false},
		{"websocket with after", "", "", "12", false, 12, false},
		{"websocket ignores Last-Event-ID", "", "9", "", false, 0, false},
		{"EventSource first connect", "text/event-stream", "", "", true, 0, false},
		{"EventSource reconnect", "text/event-stream", "41", "", true, 41, false},
		{"after wins over Last-Event-ID", "text/event-stream", "41", "50", true, 50, false},
		{"among other types", "text/html, text/event-stream; q=0.5", "", "", true, 0, false},
		{"not a number", "text/event-stream", "x", "", true, 0, true},
		{"negative", "", "", "-3", false, 0, true},
		{"too big", "text/event-stream", "9223372036854775808", "", true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{}
			if tt.after != "" {
				q.Set("after", tt.after)
			}
			r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: q.Encode()}}
			if tt.accept != "" {
				r.Header.Set("Accept", tt.accept)
			}
			if tt.lastID != "" {
				r.Header.Set("Last-Event-ID", tt.lastID)
			}
			sse := wantsEventStream(r)
			got, err := streamAfter(r, sse)
			if sse != tt.sse || (err != nil) != tt.bad || got != tt.want {
				t.Fatalf("sse %v, after %d, err %v; want sse %v, after %d, error %v", sse, got, err, tt.sse, tt.want, tt.bad)
			}
		})
	}
}
