package ui

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/daemon"
)

func TestResolveImage(t *testing.T) {
	bound := []string{"http://img.example.com/tiles"}
	tests := []struct {
		url                   string
		fetch, local, allowed bool
		label                 string
	}{
		{"http://img.example.com/tiles/a.png", true, false, true, "a.png"},
		{"http://img.example.com/other/a.png", false, false, false, "a.png"},
		{"https://img.example.com/tiles/a.png", false, false, false, "a.png"},
		{"http://evil.example.com/tiles/a.png", false, false, false, "a.png"},
		{"/Assets/tile.png", false, true, true, "tile.png"},
		{"isostore:/Shared/ShellContent/t.jpg", false, true, true, "t.jpg"},
		{"//img.example.com/tiles/a.png", false, false, false, "a.png"},
		{"javascript:alert(1)", false, false, false, "javascript:alert(1)"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got := resolveImage(tt.url, bound)
			if got.Fetch != tt.fetch || got.Local != tt.local || got.Allowed != tt.allowed || got.Label != tt.label || got.URL != tt.url {
				t.Fatalf("resolveImage(%q) = %+v", tt.url, got)
			}
		})
	}
}

// Only the watched phone's pages hear a change.
func TestNotify(t *testing.T) {
	u := New(Config{Phones: Single{}})
	watch := make(chan Event, 1)
	other := make(chan Event, 1)
	u.subs[watch] = "phone-1"
	u.subs[other] = "phone-2"
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u.Notify("phone-1", daemon.Change{Kind: daemon.ChangeRaw, App: "demo", Body: []byte("x"), Running: true, At: at})
	if ev := <-watch; ev != (Event{Phone: "phone-1", Kind: daemon.ChangeRaw, App: "demo"}) {
		t.Fatalf("event %+v", ev)
	}
	select {
	case ev := <-other:
		t.Fatalf("another phone's page heard %+v", ev)
	default:
	}
}
