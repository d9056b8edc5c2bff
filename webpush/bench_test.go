package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyVAPID is the cost a restricted channel adds to each POST:
// parsing the header and key and one ECDSA P-256 verification.
func BenchmarkVerifyVAPID(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := key.PublicKey.Bytes()
	pub := base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"aud": "https://push.example", "exp": now.Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	authz := "vapid t=" + tok + ", k=" + pub
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyVAPID(authz, pub, "https://push.example", now); err != nil {
			b.Fatal(err)
		}
	}
}
