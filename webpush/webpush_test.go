package webpush

import (
	"net/http"
	"testing"
)

// Which POSTs are Web Push: a TTL, an RFC 8291 encoding, or a vapid or
// WebPush authorization marks one, whatever the header's case; MPNS
// headers alone and a plain Content-Type do not.
func TestIsWebPush(t *testing.T) {
	for _, c := range []struct {
		h    http.Header
		want bool
	}{
		{http.Header{"Ttl": {"0"}}, true},
		{http.Header{"ttl": {""}}, true},
		{http.Header{"Content-Encoding": {"aes128gcm"}}, true},
		{http.Header{"Content-Encoding": {" AESGCM "}}, true},
		{http.Header{"Authorization": {"vapid t=a, k=b"}}, true},
		{http.Header{"Authorization": {"WebPush x"}}, true},
		{http.Header{"Authorization": {"Bearer x"}}, false},
		{http.Header{"Content-Encoding": {"gzip"}}, false},
		{http.Header{"X-Notificationclass": {"3"}, "Content-Type": {"text/xml"}}, false},
		{http.Header{}, false},
	} {
		if got := IsWebPush(c.h); got != c.want {
			t.Errorf("IsWebPush(%v) = %v, want %v", c.h, got, c.want)
		}
	}
}

func TestKeptTTL(t *testing.T) {
	for in, want := range map[int]int{0: 0, 60: 60, MaxTTL: MaxTTL, MaxTTL + 1: MaxTTL, 1<<31 - 1: MaxTTL} {
		if got := KeptTTL(in); got != want {
			t.Errorf("KeptTTL(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestNormalizeKey(t *testing.T) {
	if k, err := NormalizeKey(testKey + "="); err != nil || k != testKey {
		t.Fatalf("padded key: %q, %v", k, err)
	}
	for _, bad := range []string{"", "AAAA", testKey[:40], "!" + testKey[1:]} {
		if _, err := NormalizeKey(bad); err == nil {
			t.Errorf("%q taken as a key", bad)
		}
	}
}
