package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
)

// How an enrolled device proves its identity without sending its secret.
//
// The device's key is SHA-256 of the secret it was given at enrolment;
// the service has kept exactly that hash since version 1, so devices
// enrolled before version 2 keep working. Every proof is HMAC-SHA256 under
// that key over a label and both ends' nonces: the service's challenge
// nonce makes a recorded hello useless on another connection, and the
// device's nonce makes a recorded welcome or refusal useless to whoever
// would play it back to the device. The labels keep a proof of one kind
// from passing as another.
//
// The limit: the key is symmetric. Whoever reads the service's database
// can make proofs for every device in it, so the database is as secret as
// the devices' secrets.

// NonceSize is the number of random bytes in a nonce; NonceChars the length
// of a nonce or proof as sent (unpadded base64url of 32 bytes).
const (
	NonceSize  = 32
	NonceChars = 43
)

// Proof labels.
const (
	labelHello   = "herald/2 hello"
	labelWelcome = "herald/2 welcome"
	labelRefused = "herald/2 refused"
)

// NewNonce returns NonceSize random bytes, base64url encoded.
func NewNonce() string {
	b := make([]byte, NonceSize)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DeviceKey derives the key a device proves itself with from its secret.
// The service stores it as the device's secret hash.
func DeviceKey(secret string) []byte {
	k := sha256.Sum256([]byte(secret))
	return k[:]
}

// HelloProof is what a device sends in Hello.Proof.
func HelloProof(key []byte, serviceNonce, deviceNonce, id string) string {
	return mac(key, labelHello, serviceNonce, deviceNonce, id)
}

// WelcomeProof is what the service sends in Welcome.Proof.
func WelcomeProof(key []byte, serviceNonce, deviceNonce, id string) string {
	return mac(key, labelWelcome, serviceNonce, deviceNonce, id)
}

// RefusedProof is what the service sends in Refused.Proof.
func RefusedProof(key []byte, serviceNonce, deviceNonce, id, reason string) string {
	return mac(key, labelRefused, serviceNonce, deviceNonce, id, reason)
}

// ProofEqual compares a proof received with the one expected, in constant
// time (for proofs of one length, as every proof is).
func ProofEqual(got, want string) bool {
	if len(got) != len(want) {
		return false
	}
	var diff byte
	for i := 0; i < len(want); i++ {
		diff |= got[i] ^ want[i]
	}
	return subtle.ConstantTimeByteEq(diff, 0) == 1
}

// mac is HMAC-SHA256 (RFC 2104) under key of the label and the parts,
// each length-prefixed, so that no two different lists of parts
// authenticate the same bytes.
func mac(key []byte, label string, parts ...string) string {
	sum := macSum(key, label, parts)
	var b [NonceChars]byte // one allocation, the string's
	base64.RawURLEncoding.Encode(b[:], sum[:])
	return string(b[:])
}

// macSum computes HMAC-SHA256 in two sha256.Sum256 calls over buffers on
// the stack: a service checks one proof and makes another at every hello,
// and crypto/hmac allocates two hash states and their pads for each
// (TestMacIsHMAC checks it against crypto/hmac).
func macSum(key []byte, label string, parts []string) [sha256.Size]byte {
	var k [sha256.BlockSize]byte
	if len(key) > sha256.BlockSize {
		h := sha256.Sum256(key)
		copy(k[:], h[:])
	} else {
		copy(k[:], key)
	}
	// K ^ ipad, then the message: a label, two nonces and an id fit.
	var buf [sha256.BlockSize + 256]byte
	msg := buf[:sha256.BlockSize]
	for i, c := range k {
		msg[i] = c ^ 0x36
	}
	msg = appendPart(msg, label)
	for _, p := range parts {
		msg = appendPart(msg, p)
	}
	inner := sha256.Sum256(msg)
	var outer [sha256.BlockSize + sha256.Size]byte
	for i, c := range k {
		outer[i] = c ^ 0x5c
	}
	copy(outer[sha256.BlockSize:], inner[:])
	return sha256.Sum256(outer[:])
}

func appendPart(b []byte, p string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

func validNonce(s string) bool {
	if len(s) != NonceChars {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == NonceSize
}
