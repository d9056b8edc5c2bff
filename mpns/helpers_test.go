package mpns

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// hdr builds a header map with the keys exactly as given, the way hand-built
// maps in sender libraries and tests look, rather than canonicalised.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1])
	}
	return h
}

// checkErr fails unless err matches want: nil for success, otherwise a
// sentinel that err must wrap together with ErrBadRequest, and a fragment
// the message must contain.
func checkErr(t *testing.T, err, want error, msg string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %v", err, want)
	}
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("error %q does not wrap ErrBadRequest", err)
	}
	if !strings.HasPrefix(err.Error(), "mpns: ") {
		t.Errorf("error %q lacks the mpns: prefix", err)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not mention %q", err, msg)
	}
}

const decl = `<?xml version="1.0" encoding="utf-8"?>`

// toastDoc wraps toast fields the way most sender libraries do.
func toastDoc(fields string) string {
	return decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast>` + fields + `</wp:Toast></wp:Notification>`
}

// tileDoc wraps tile fields; attrs go on <wp:Tile>, root on <wp:Notification>.
func tileDoc(root, attrs, fields string) string {
	return decl + `<wp:Notification xmlns:wp="WPNotification"` + root + `><wp:Tile` + attrs + `>` + fields + `</wp:Tile></wp:Notification>`
}
