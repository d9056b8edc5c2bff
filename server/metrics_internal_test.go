package server

import (
	"net/http"
	"testing"
)

func TestKindLabel(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want string
	}{
		{"toast", http.Header{"X-Windowsphone-Target": {"toast"}}, "toast"},
		{"token any case, spaced", http.Header{"X-Windowsphone-Target": {" Token "}}, "tile"},
		{"PushSharp tile", http.Header{"X-Windowsphone-Target": {"tile"}}, "tile"},
		{"absent", http.Header{}, "raw"},
		{"python-mpns raw", http.Header{"X-Windowsphone-Target": {"raw"}}, "raw"},
		{"hand-built map", http.Header{"x-windowsphone-target": {"TOAST"}}, "toast"},
		{"unknown target", http.Header{"X-Windowsphone-Target": {"badge"}}, kindUnknown},
	}
	for _, tt := range tests {
		if got := kindLabel(tt.h); got != tt.want {
			t.Errorf("%s: kindLabel = %q, want %q", tt.name, got, tt.want)
		}
	}
}
