package testenv

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"
)

// Subscriber is a Web Push app's keys (RFC 8291): what a browser or a
// UnifiedPush app hands its application server with the endpoint.
type Subscriber struct {
	priv *ecdh.PrivateKey
	auth []byte
}

func NewSubscriber(t *testing.T) *Subscriber {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return &Subscriber{priv: priv, auth: auth}
}

// P256dh is the app's public key as a subscription carries it.
func (s *Subscriber) P256dh() string {
	return base64.RawURLEncoding.EncodeToString(s.priv.PublicKey().Bytes())
}

// Auth is the app's authentication secret as a subscription carries it.
func (s *Subscriber) Auth() string { return base64.RawURLEncoding.EncodeToString(s.auth) }

// Decrypt undoes RFC 8291's aes128gcm encryption, as the app does.
func (s *Subscriber) Decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("bad header")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, err
	}
	shared, err := s.priv.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	prkKey, err := hkdf.Extract(sha256.New, shared, s.auth)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(s.priv.PublicKey().Bytes()) + string(asPub.Bytes())
	ikm, err := hkdf.Expand(sha256.New, prkKey, info, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, body[21+idlen:], nil)
	if err != nil {
		return nil, err
	}
	// The last record ends in 0x02 and zero padding (RFC 8188 §2).
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		return nil, errors.New("bad padding delimiter")
	}
	return plain[:len(plain)-1], nil
}
