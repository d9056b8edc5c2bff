package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/protodoc"
)

// protocolPage is the device protocol's documentation, which carries the
// known-answer vectors of the proofs.
const protocolPage = "../docs/protocol.md"

// TestProtocolVectors checks the known-answer vectors printed in
// docs/protocol.md three ways: against the construction as the page
// words it, built here from the standard library alone; against the code
// both ends run (the device's hello proof and its checks of welcome and
// refused, the service's check of the hello); and against the frames the
// page shows, decoded as each end decodes them.
func TestProtocolVectors(t *testing.T) {
	v, frames, err := protodoc.Read(protocolPage)
	if err != nil {
		t.Fatal(err)
	}
	unhex := func(name string) []byte {
		t.Helper()
		b, err := hex.DecodeString(v[name])
		if err != nil {
			t.Fatalf("vectors: %s: %v", name, err)
		}
		return b
	}
	secret, id, sn, dn, reason := v["secret"], v["id"], v["challenge_nonce"], v["hello_nonce"], v["refused_reason"]

	// The construction as the page words it: the key is the raw SHA-256
	// of the secret's text; every part, the label too, is prefixed with
	// its length as 4 bytes big-endian; nonces and id enter as sent; the
	// proof is unpadded base64url.
	key := protodoc.Key(secret)
	if !bytes.Equal(key, unhex("key")) {
		t.Errorf("key: the page says %s, SHA-256 of the secret's text is %x", v["key"], key)
	}
	for _, c := range []struct {
		name  string
		parts []string
		code  string
	}{
		{"hello", []string{protodoc.LabelHello, sn, dn, id}, HelloProof(DeviceKey(secret), sn, dn, id)},
		{"welcome", []string{protodoc.LabelWelcome, sn, dn, id}, WelcomeProof(DeviceKey(secret), sn, dn, id)},
		{"refused", []string{protodoc.LabelRefused, sn, dn, id, reason}, RefusedProof(DeviceKey(secret), sn, dn, id, reason)},
	} {
		m := protodoc.Message(c.parts[0], c.parts[1:]...)
		if !bytes.Equal(m, unhex(c.name+"_message")) {
			t.Errorf("%s message: the page says %s, the construction gives %x", c.name, v[c.name+"_message"], m)
		}
		want := v[c.name+"_proof"]
		if got := protodoc.Proof(key, unhex(c.name+"_message")); got != want {
			t.Errorf("%s proof: the page says %s, HMAC of its message is %s", c.name, want, got)
		}
		if c.code != want {
			t.Errorf("%s proof: the page says %s, the code computes %s", c.name, want, c.code)
		}
		if len(want) != NonceChars || !validNonce(want) {
			t.Errorf("%s proof %q is not %d characters of unpadded base64url", c.name, want, NonceChars)
		}
	}

	// The service checks the hello with the key it stored at enrolment;
	// the device checks welcome and refused with its own. A proof for
	// another nonce, id or kind does not pass.
	stored := DeviceKey(secret)
	if !ProofEqual(v["hello_proof"], HelloProof(stored, sn, dn, id)) {
		t.Error("the service does not accept the page's hello proof")
	}
	if ProofEqual(v["hello_proof"], HelloProof(stored, dn, sn, id)) || ProofEqual(v["welcome_proof"], HelloProof(stored, sn, dn, id)) {
		t.Error("a proof passes for swapped nonces or as another kind")
	}

	// The frames on the page decode as each end decodes them and carry the
	// vectors.
	if len(frames) != 4 {
		t.Fatalf("frames block has %d lines, want challenge, hello, welcome, refused", len(frames))
	}
	ch, err := DecodeService([]byte(frames[0]))
	if c, ok := ch.(*Challenge); err != nil || !ok || c.Nonce != sn {
		t.Errorf("challenge frame %s: %+v, %v", frames[0], ch, err)
	}
	hf, err := DecodeDevice([]byte(frames[1]))
	if h, ok := hf.(*Hello); err != nil || !ok || h.ID != id || h.Nonce != dn || !ProofEqual(h.Proof, HelloProof(stored, sn, dn, id)) {
		t.Errorf("hello frame %s: %+v, %v", frames[1], hf, err)
	}
	wf, err := DecodeService([]byte(frames[2]))
	if w, ok := wf.(*Welcome); err != nil || !ok || w.ID != id || w.Secret != "" || !ProofEqual(w.Proof, WelcomeProof(stored, sn, dn, id)) {
		t.Errorf("welcome frame %s: %+v, %v", frames[2], wf, err)
	}
	rf, err := DecodeService([]byte(frames[3]))
	if r, ok := rf.(*Refused); err != nil || !ok || r.Reason != reason || !ProofEqual(r.Proof, RefusedProof(stored, sn, dn, id, r.Reason)) {
		t.Errorf("refused frame %s: %+v, %v", frames[3], rf, err)
	}

	// Padded or standard base64 is refused, as the page says.
	padded := v["hello_proof"] + "="
	std := strings.NewReplacer("-", "+", "_", "/").Replace(v["welcome_proof"])
	for name, frame := range map[string]string{
		"hello, padded proof":   strings.Replace(frames[1], v["hello_proof"], padded, 1),
		"hello, decoded nonce":  strings.Replace(frames[1], dn, base64.StdEncoding.EncodeToString([]byte(dn)), 1),
		"hello with its secret": strings.Replace(frames[1], `"last_seq":0`, `"last_seq":0,"secret":"`+secret+`"`, 1),
	} {
		if _, err := DecodeDevice([]byte(frame)); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want %v", name, err, ErrBadFrame)
		}
	}
	if std != v["welcome_proof"] {
		if _, err := DecodeService([]byte(strings.Replace(frames[2], v["welcome_proof"], std, 1))); !errors.Is(err, ErrBadFrame) {
			t.Errorf("welcome with a standard-base64 proof: %v, want %v", err, ErrBadFrame)
		}
	}
	if _, err := DecodeService([]byte(strings.Replace(frames[3], v["refused_proof"], v["refused_proof"]+"=", 1))); !errors.Is(err, ErrBadFrame) {
		t.Errorf("refused with a padded proof: %v, want %v", err, ErrBadFrame)
	}
}
