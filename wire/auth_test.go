package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// referenceMAC is mac as crypto/hmac computes it.
func referenceMAC(key []byte, parts ...string) string {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		h.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// mac computes HMAC-SHA256 itself, on the stack: it must agree with
// crypto/hmac for every key length (shorter than a block, a block,
// longer and hashed first) and every message length (within the stack
// buffer and past it), and make no allocation but its result.
func TestMacIsHMAC(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name  string
		key   []byte
		parts []string
	}{
		{"device key", DeviceKey("secret"), []string{labelHello, NewNonce(), NewNonce(), "dev"}},
		{"empty key", nil, []string{labelWelcome}},
		{"key of a block", []byte(strings.Repeat("k", sha256.BlockSize)), []string{labelRefused, "a", "b"}},
		{"key past a block", []byte(strings.Repeat("k", sha256.BlockSize+1)), []string{labelHello, "a"}},
		{"empty parts", DeviceKey("s"), []string{"", "", ""}},
		{"message past the buffer", DeviceKey("s"), []string{labelHello, long, long}},
	} {
		if got, want := mac(tc.key, tc.parts[0], tc.parts[1:]...), referenceMAC(tc.key, tc.parts...); got != want {
			t.Errorf("%s: mac %s, crypto/hmac %s", tc.name, got, want)
		}
	}
	key, sn, dn := DeviceKey("secret"), NewNonce(), NewNonce()
	if n := testing.AllocsPerRun(100, func() { _ = macSum(key, labelHello, []string{sn, dn, "dev"}) }); n != 0 {
		t.Errorf("macSum allocates %v times", n)
	}
	proof := HelloProof(key, sn, dn, "dev")
	if n := testing.AllocsPerRun(100, func() { _ = ProofEqual(proof, HelloProof(key, sn, dn, "dev")) }); n > 1 {
		t.Errorf("checking a proof allocates %v times, want only the expected proof's string", n)
	}
}

func TestProofEqual(t *testing.T) {
	p := NewNonce()
	for _, tc := range []struct {
		got, want string
		eq        bool
	}{
		{p, p, true},
		{p, p[:len(p)-1], false},
		{p[:len(p)-1] + "!", p, false},
		{"", "", true},
		{"", p, false},
	} {
		if got := ProofEqual(tc.got, tc.want); got != tc.eq {
			t.Errorf("ProofEqual(%q, %q) = %v", tc.got, tc.want, got)
		}
	}
}

func TestProofsAreBoundToKeyNoncesAndKind(t *testing.T) {
	key := DeviceKey("secret")
	sn, dn := NewNonce(), NewNonce()
	base := HelloProof(key, sn, dn, "dev")
	if !validNonce(base) || !validNonce(sn) {
		t.Fatalf("proof %q or nonce %q is not %d base64url characters", base, sn, NonceChars)
	}
	if !ProofEqual(base, HelloProof(DeviceKey("secret"), sn, dn, "dev")) {
		t.Fatal("the same inputs give another proof")
	}
	for name, other := range map[string]string{
		"other key":           HelloProof(DeviceKey("secret2"), sn, dn, "dev"),
		"other service nonce": HelloProof(key, NewNonce(), dn, "dev"),
		"other device nonce":  HelloProof(key, sn, NewNonce(), "dev"),
		"other id":            HelloProof(key, sn, dn, "dev2"),
		"welcome":             WelcomeProof(key, sn, dn, "dev"),
		"refused":             RefusedProof(key, sn, dn, "dev", ""),
		// Length prefixes: moving a byte from one part to the next
		// authenticates different bytes.
		"parts shifted": HelloProof(key, sn+dn[:1], dn[1:], "dev"),
	} {
		if ProofEqual(other, base) {
			t.Errorf("%s: same proof", name)
		}
	}
	if ProofEqual(RefusedProof(key, sn, dn, "dev", RefusedRetired), RefusedProof(key, sn, dn, "dev", RefusedUnknown)) {
		t.Error("a refusal's proof does not cover its reason")
	}
}

func TestHelloValidation(t *testing.T) {
	nonce, proof := NewNonce(), NewNonce()
	for _, tc := range []struct {
		name    string
		frame   string
		version bool // refused as an unsupported version
		ok      bool
	}{
		{"enrol", `{"type":"hello","version":2}`, false, true},
		{"identified", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `","proof":"` + proof + `","power":"low"}`, false, true},
		{"version 1 with a secret", `{"type":"hello","version":1,"id":"d","secret":"s"}`, true, false},
		{"version 0", `{"type":"hello"}`, true, false},
		{"version 3", `{"type":"hello","version":3}`, true, false},
		{"version huge", `{"type":"hello","version":9223372036854775807}`, true, false},
		{"power 60 KB", `{"type":"hello","version":2,"power":"` + strings.Repeat("x", 60<<10) + `"}`, false, false},
		{"power unknown", `{"type":"hello","version":2,"power":"full"}`, false, false},
		{"id without proof", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `"}`, false, false},
		{"id without nonce", `{"type":"hello","version":2,"id":"d","proof":"` + proof + `"}`, false, false},
		{"long proof", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `","proof":"` + proof + `A"}`, false, false},
		{"nonce not base64url", `{"type":"hello","version":2,"id":"d","nonce":"` + strings.Repeat("+", NonceChars) + `","proof":"` + proof + `"}`, false, false},
		{"short proof", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `","proof":"abc"}`, false, false},
		{"proof without id", `{"type":"hello","version":2,"nonce":"` + nonce + `","proof":"` + proof + `"}`, false, false},
		{"version 2 with a secret and a valid proof", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `","proof":"` + proof + `","secret":"s"}`, false, false},
		{"enrolling with a secret", `{"type":"hello","version":2,"secret":"s"}`, false, false},
		{"padded proof", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `","proof":"` + proof + `="}`, false, false},
		{"padded nonce", `{"type":"hello","version":2,"id":"d","nonce":"` + nonce + `=","proof":"` + proof + `"}`, false, false},
		{"enrolling with a nonce", `{"type":"hello","version":2,"nonce":"` + nonce + `"}`, false, false},
		{"id too long", `{"type":"hello","version":2,"id":"` + strings.Repeat("d", MaxIDLength+1) + `","nonce":"` + nonce + `","proof":"` + proof + `"}`, false, false},
		{"heartbeat", `{"type":"hello","version":2,"heartbeat":240}`, false, true},
		{"heartbeat a day", `{"type":"hello","version":2,"heartbeat":86400}`, false, true},
		{"heartbeat past a day", `{"type":"hello","version":2,"heartbeat":86401}`, false, false},
		{"heartbeat negative", `{"type":"hello","version":2,"heartbeat":-1}`, false, false},
		{"heartbeat huge", `{"type":"hello","version":2,"heartbeat":9223372036854775807}`, false, false},
		{"heartbeat past int64", `{"type":"hello","version":2,"heartbeat":92233720368547758070}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDevice([]byte(tc.frame))
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v; want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadFrame) {
				t.Fatalf("err %v is not ErrBadFrame", err)
			}
			if errors.Is(err, ErrVersion) != tc.version {
				t.Fatalf("err %v: ErrVersion %v, want %v", err, errors.Is(err, ErrVersion), tc.version)
			}
		})
	}
}

func TestChallengeValidation(t *testing.T) {
	if _, err := DecodeService([]byte(`{"type":"challenge","version":2,"nonce":"` + NewNonce() + `"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeService([]byte(`{"type":"challenge","version":1,"nonce":"` + NewNonce() + `"}`)); !errors.Is(err, ErrVersion) {
		t.Fatalf("challenge of version 1: %v; want ErrVersion", err)
	}
	if _, err := DecodeService([]byte(`{"type":"challenge","version":2,"nonce":""}`)); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("challenge without nonce: %v; want ErrBadFrame", err)
	}
}
