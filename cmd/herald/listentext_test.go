package main

import (
	"encoding/json"
	"testing"

	"github.com/heraldpush/herald/app"
)

// TestRawText: --text turns a UTF-8 raw body into "text" and leaves
// everything else as it was, so no byte is lost.
func TestRawText(t *testing.T) {
	tests := []struct {
		name     string
		e        app.Event
		applies  bool
		wantJSON string
	}{
		{"json body", app.Event{ID: 7, Type: app.EventRaw, App: "demo", MessageID: "m", Body: []byte(`{"sync":true}`)}, true,
			`{"id":7,"type":"raw","app":"demo","message_id":"m","text":"{\"sync\":true}"}`},
		{"accents and newline", app.Event{ID: 8, Type: app.EventRaw, App: "demo", Body: []byte("héllo\nwörld")}, true,
			`{"id":8,"type":"raw","app":"demo","text":"héllo\nwörld"}`},
		{"empty body", app.Event{ID: 9, Type: app.EventRaw, App: "demo", Body: []byte{}}, true,
			`{"id":9,"type":"raw","app":"demo","text":""}`},
		{"binary body stays base64", app.Event{Type: app.EventRaw, App: "demo", Body: []byte{0xff, 0xfe, 0x00}}, false, ""},
		{"cut UTF-8 sequence", app.Event{Type: app.EventRaw, App: "demo", Body: []byte("h\xc3")}, false, ""},
		{"toast untouched", app.Event{Type: app.EventToast, App: "demo", Text1: "hi"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rawText(tt.e)
			if ok != tt.applies {
				t.Fatalf("rawText applies = %v, want %v", ok, tt.applies)
			}
			if !ok {
				return
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.wantJSON {
				t.Fatalf("printed %s\nwant    %s", b, tt.wantJSON)
			}
		})
	}
}
