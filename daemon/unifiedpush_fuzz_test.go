package daemon

import (
	"testing"

	"github.com/heraldpush/herald/wire"
)

// FuzzUnifiedPushAppID: whatever bus name and token a D-Bus caller sends,
// a name the distributor accepts gives an app id the channel code
// accepts, and different tokens of one app get different app ids.
func FuzzUnifiedPushAppID(f *testing.F) {
	for _, s := range []struct{ service, token string }{
		{"org.kde.neochat", "a1b2c3"}, {"org.example.App", ""}, {":1.42", "t"}, {"no-dots", "t"},
		{"org.example.a-very-long-application-name-that-goes-on.and.on.and.on", "tok"},
		{"org..double", "t"}, {"org.1digit", "t"}, {"org.ex ample", "t"}, {"org.ex/ample", "t"},
	} {
		f.Add(s.service, s.token)
	}
	f.Fuzz(func(t *testing.T, service, token string) {
		if !validBusName(service) {
			return
		}
		if len(service) > 255 {
			t.Fatalf("accepted a %d-byte name", len(service))
		}
		id := upAppID(service, token)
		if !wire.ValidName(id) {
			t.Fatalf("app id %q of %q is not a valid app id", id, service)
		}
		if other := upAppID(service, token+"x"); other == id {
			t.Fatalf("tokens %q and %q share app id %q", token, token+"x", id)
		}
	})
}
