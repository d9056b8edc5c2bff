package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests' application server: a fixed key, so that fuzz seeds signed
// with it stay valid.
var (
	jwtTestKey = func() *ecdsa.PrivateKey {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), []byte("herald vapid test key, not secret"[:32]))
		if err != nil {
			panic(err)
		}
		return k
	}()
	jwtTestPub = func() string {
		b, err := jwtTestKey.PublicKey.Bytes()
		if err != nil {
			panic(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}()
	jwtNow    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	jwtOrigin = "https://push.example"
)

type sForm int

const (
	lowS sForm = iota
	highS
)

// signJWT signs header and claims, as given byte for byte, with the
// test key, its s in the form asked for.
func signJWT(t testing.TB, header, claims string, form sForm) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, jwtTestKey, h[:])
	if err != nil {
		t.Fatal(err)
	}
	half := new(big.Int).Rsh(p256N, 1)
	if (s.Cmp(half) > 0) != (form == highS) {
		s.Sub(p256N, s)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func vapidHeader(token string) string { return "vapid t=" + token + ", k=" + jwtTestPub }

// The strict reading of a VAPID token: each claim of the one type RFC
// 7519 and RFC 8292 give it, each key once, nothing a lenient parser
// would stretch. Every token here is signed by the channel's key, so each
// refusal is the parser's, not the signature's.
func TestVAPIDStrict(t *testing.T) {
	const hdr = `{"typ":"JWT","alg":"ES256"}`
	exp := strconv.FormatInt(jwtNow.Add(time.Hour).Unix(), 10)
	past := strconv.FormatInt(jwtNow.Add(-time.Second).Unix(), 10)
	claims := func(extra string) string { return `{"aud":"` + jwtOrigin + `","exp":` + exp + extra + `}` }
	good := signJWT(t, hdr, claims(`,"sub":"mailto:ops@example.org"`), lowS)
	sig := good[strings.LastIndex(good, ".")+1:]
	for _, c := range []struct {
		name, auth string
		ok         bool
	}{
		{"valid", vapidHeader(good), true},
		{"valid, s above n/2", vapidHeader(signJWT(t, hdr, claims(""), highS)), true},
		{"valid, no typ, quoted parameters", `vapid t="` + signJWT(t, `{"alg":"ES256"}`, claims(""), lowS) + `", k="` + jwtTestPub + `"`, true},
		{"valid, nbf and iat past", vapidHeader(signJWT(t, hdr, claims(`,"nbf":`+past+`,"iat":`+past), lowS)), true},
		{"valid, nested claim", vapidHeader(signJWT(t, hdr, claims(`,"x":{"a":[1,{"b":2}]}`), lowS)), true},

		{"exp a float", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":`+exp+`.0}`, lowS)), false},
		{"exp a fraction", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":`+exp+`.5}`, lowS)), false},
		{"exp with an exponent", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":1.77e9}`, lowS)), false},
		{"exp a string", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":"`+exp+`"}`, lowS)), false},
		{"exp negative", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":-1}`, lowS)), false},
		{"exp huge", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":99999999999999999999}`, lowS)), false},
		{"exp null", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":null}`, lowS)), false},
		{"exp past", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","exp":`+past+`}`, lowS)), false},
		{"aud an array", vapidHeader(signJWT(t, hdr, `{"aud":["`+jwtOrigin+`"],"exp":`+exp+`}`, lowS)), false},
		{"aud missing", vapidHeader(signJWT(t, hdr, `{"exp":`+exp+`}`, lowS)), false},
		{"aud twice, the right one last", vapidHeader(signJWT(t, hdr, `{"aud":"https://evil.example","exp":`+exp+`,"aud":"`+jwtOrigin+`"}`, lowS)), false},
		{"aud twice, the same", vapidHeader(signJWT(t, hdr, `{"aud":"`+jwtOrigin+`","aud":"`+jwtOrigin+`","exp":`+exp+`}`, lowS)), false},
		{"aud twice, one escaped", vapidHeader(signJWT(t, hdr, `{"aud":"https://evil.example","\u0061ud":"`+jwtOrigin+`","exp":`+exp+`}`, lowS)), false},
		{"exp twice", vapidHeader(signJWT(t, hdr, claims(`,"exp":`+past), lowS)), false},
		{"a nested key twice", vapidHeader(signJWT(t, hdr, claims(`,"x":{"a":1,"a":2}`), lowS)), false},
		{"AUD in capitals only", vapidHeader(signJWT(t, hdr, `{"AUD":"`+jwtOrigin+`","exp":`+exp+`}`, lowS)), false},
		{"nbf ahead", vapidHeader(signJWT(t, hdr, claims(`,"nbf":`+exp), lowS)), false},
		{"nbf a float", vapidHeader(signJWT(t, hdr, claims(`,"nbf":1.5`), lowS)), false},
		{"iat a string", vapidHeader(signJWT(t, hdr, claims(`,"iat":"0"`), lowS)), false},
		{"sub a number", vapidHeader(signJWT(t, hdr, claims(`,"sub":1`), lowS)), false},
		{"claims not UTF-8", vapidHeader(signJWT(t, hdr, claims(`,"sub":"`+"\xff"+`"`), lowS)), false},
		{"claims followed by more", vapidHeader(signJWT(t, hdr, claims("")+`{}`, lowS)), false},
		{"claims an array", vapidHeader(signJWT(t, hdr, `[`+claims("")+`]`, lowS)), false},
		{"claims nested too deep", vapidHeader(signJWT(t, hdr, claims(`,"x":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)), lowS)), false},
		{"alg twice", vapidHeader(signJWT(t, `{"alg":"none","alg":"ES256"}`, claims(""), lowS)), false},
		{"alg es256", vapidHeader(signJWT(t, `{"alg":"es256"}`, claims(""), lowS)), false},
		{"alg ES384", vapidHeader(signJWT(t, `{"alg":"ES384"}`, claims(""), lowS)), false},
		{"typ other", vapidHeader(signJWT(t, `{"alg":"ES256","typ":"JOSE+JSON"}`, claims(""), lowS)), false},
		{"crit", vapidHeader(signJWT(t, `{"alg":"ES256","crit":["b64"],"b64":false}`, claims(""), lowS)), false},
		{"padded part", vapidHeader(strings.Replace(good, ".", "=.", 1)), false},
		{"standard base64", vapidHeader(strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+"), false},
		{"four parts", vapidHeader(good + ".x"), false},
		{"signature DER", vapidHeader(good[:strings.LastIndex(good, ".")+1] + base64.RawURLEncoding.EncodeToString(append([]byte{0x30, 0x44}, make([]byte, 66)...))), false},
		{"signature of 65 bytes", vapidHeader(good + "A"), false},
		{"signature s = 0", vapidHeader(good[:strings.LastIndex(good, ".")+1] + base64.RawURLEncoding.EncodeToString(append(mustB64(t, sig)[:32], make([]byte, 32)...))), false},
		{"signature s = n", vapidHeader(good[:strings.LastIndex(good, ".")+1] + base64.RawURLEncoding.EncodeToString(append(mustB64(t, sig)[:32], p256N.FillBytes(make([]byte, 32))...))), false},
		{"t twice", vapidHeader(good) + ", t=" + good, false},
		{"k twice", vapidHeader(good) + ", k=" + jwtTestPub, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyVAPID(c.auth, jwtTestPub, jwtOrigin, jwtNow)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				if !errors.Is(err, ErrVAPIDInvalid) {
					t.Fatalf("%v is not ErrVAPIDInvalid", err)
				}
			}
		})
	}
}

// Non-canonical base64url (trailing bits set) is a second spelling of the
// same bytes: refused.
func TestVAPIDNonCanonicalBase64(t *testing.T) {
	good := signJWT(t, `{"alg":"ES256"}`, `{"aud":"`+jwtOrigin+`","exp":`+strconv.FormatInt(jwtNow.Add(time.Hour).Unix(), 10)+`}`, lowS)
	parts := strings.Split(good, ".")
	// 64 bytes of signature end in a character carrying 2 spare bits.
	last := parts[2][len(parts[2])-1]
	idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
	alt := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|1]
	if alt == last {
		alt = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|2]
	}
	forged := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + string(alt)
	if b1, b2 := mustB64(t, parts[2]), decodeLoose(forged); string(b1) != string(b2) {
		t.Fatalf("the test's second spelling decodes to other bytes")
	}
	if err := VerifyVAPID(vapidHeader(good), jwtTestPub, jwtOrigin, jwtNow); err != nil {
		t.Fatalf("canonical: %v", err)
	}
	if err := VerifyVAPID(vapidHeader(forged), jwtTestPub, jwtOrigin, jwtNow); err == nil {
		t.Fatal("a second spelling of the signature accepted")
	}
}

func decodeLoose(token string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(token[strings.LastIndex(token, ".")+1:])
	return b
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
