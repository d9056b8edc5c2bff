package server_test

import (
	"testing"

	"github.com/heraldpush/herald/wire"
)

// helloFor answers the service's challenge frame as a device with this
// identity would; an empty id enrols.
func helloFor(t testing.TB, challenge any, id, secret string, lastSeq uint64) wire.Hello {
	t.Helper()
	c, ok := challenge.(*wire.Challenge)
	if !ok {
		t.Fatalf("first frame is %T, not a challenge", challenge)
	}
	h := wire.Hello{Type: wire.TypeHello, Version: wire.Version, LastSeq: lastSeq}
	if id != "" {
		h.ID, h.Nonce = id, wire.NewNonce()
		h.Proof = wire.HelloProof(wire.DeviceKey(secret), c.Nonce, h.Nonce, id)
	}
	return h
}
