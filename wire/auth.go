package wire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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
// time.
func ProofEqual(got, want string) bool {
	return hmac.Equal([]byte(got), []byte(want))
}

// mac length-prefixes every part, so that no two different lists of parts
// authenticate the same bytes.
func mac(key []byte, label string, parts ...string) string {
	h := hmac.New(sha256.New, key)
	var n [4]byte
	for _, p := range append([]string{label}, parts...) {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func validNonce(s string) bool {
	if len(s) != NonceChars {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == NonceSize
}
