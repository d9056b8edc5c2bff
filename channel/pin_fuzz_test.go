package channel_test

import (
	"testing"

	"github.com/heraldpush/herald/channel"
)

// FuzzParsePin: a pin from a configuration file is 32 bytes or an error,
// never anything else.
func FuzzParsePin(f *testing.F) {
	f.Fuzz(func(t *testing.T, pin string) {
		b, err := channel.ParsePin(pin)
		if err == nil && len(b) != 32 {
			t.Fatalf("ParsePin(%q) = %d bytes", pin, len(b))
		}
		if err != nil && b != nil {
			t.Fatalf("ParsePin(%q) returned bytes with error %v", pin, err)
		}
	})
}
