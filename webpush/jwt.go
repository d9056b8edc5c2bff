package webpush

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// vapidClaims is what the service reads of a VAPID token's claims.
type vapidClaims struct {
	aud    string
	exp    int64
	nbf    int64
	hasNbf bool
}

// maxJSONDepth bounds how deep a token's JSON may nest; real ones are flat.
const maxJSONDepth = 16

// maxNumericDate bounds exp, nbf and iat: year 9999, so that a date
// never overflows time arithmetic.
const maxNumericDate = 253402300799

var (
	p256N     = elliptic.P256().Params().N
	errNotJWS = errors.New("the token is not a compact JWS of three base64url parts")
)

// parseVAPIDToken checks a VAPID JWT's signature by pub and reads its
// claims, strictly: there is one reading of each token, so a proxy, a
// log and the service cannot take it to say different things, and
// nothing a lenient parser would let pass (a float or string exp, an
// audience list, a key given twice with the last one winning) is taken.
//
//   - three parts of unpadded base64url in its one canonical spelling;
//   - header and claims each one JSON object in valid UTF-8, no key twice
//     in any object at any depth, nothing after it;
//   - header alg exactly "ES256" (RFC 8292 §2), typ, if present, "JWT",
//     and no crit: no extension is understood, so none may be required;
//   - the signature 64 bytes, r and s each in [1, n-1] (RFC 7518 §3.4);
//   - aud a string, exp an integer NumericDate, nbf and iat integers
//     when present, sub a string when present.
//
// A signature with s above n/2 is taken: it is as good as (r, n-s), which
// only the key's holder can make too, and ES256 signers (Go's
// crypto/ecdsa under golang-jwt and webpush-go, Node's and Python's
// libraries) do not normalise s, so refusing it would refuse about half of
// every real sender's messages. Nothing here keys on a token's bytes, so
// the second spelling is worth nothing to anyone.
func parseVAPIDToken(token string, pub *ecdsa.PublicKey) (vapidClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return vapidClaims{}, errNotJWS
	}
	var dec [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || len(b) == 0 {
			return vapidClaims{}, errNotJWS
		}
		dec[i] = b
	}
	header, err := strictObject(dec[0])
	if err != nil {
		return vapidClaims{}, fmt.Errorf("header: %w", err)
	}
	if alg, ok := jsonString(header["alg"]); !ok || alg != "ES256" {
		return vapidClaims{}, errors.New("header: alg must be ES256")
	}
	if raw, present := header["typ"]; present {
		if typ, ok := jsonString(raw); !ok || !strings.EqualFold(typ, "JWT") {
			return vapidClaims{}, errors.New("header: typ must be JWT")
		}
	}
	if _, present := header["crit"]; present {
		return vapidClaims{}, errors.New("header: crit names extensions this service does not understand")
	}
	if err := verifyES256(pub, token[:len(parts[0])+1+len(parts[1])], dec[2]); err != nil {
		return vapidClaims{}, err
	}
	// The claims are read only once the signature holds: what nobody
	// signed is nobody's to be told about in detail.
	body, err := strictObject(dec[1])
	if err != nil {
		return vapidClaims{}, fmt.Errorf("claims: %w", err)
	}
	var c vapidClaims
	raw, present := body["aud"]
	if !present {
		return vapidClaims{}, errors.New("claims: aud missing")
	}
	var ok bool
	if c.aud, ok = jsonString(raw); !ok {
		return vapidClaims{}, errors.New("claims: aud must be one string")
	}
	raw, present = body["exp"]
	if !present {
		return vapidClaims{}, errors.New("claims: exp missing")
	}
	if c.exp, ok = numericDate(raw); !ok {
		return vapidClaims{}, errors.New("claims: exp must be an integer number of seconds")
	}
	if raw, present = body["nbf"]; present {
		if c.nbf, ok = numericDate(raw); !ok {
			return vapidClaims{}, errors.New("claims: nbf must be an integer number of seconds")
		}
		c.hasNbf = true
	}
	if raw, present = body["iat"]; present {
		if _, ok = numericDate(raw); !ok {
			return vapidClaims{}, errors.New("claims: iat must be an integer number of seconds")
		}
	}
	if raw, present = body["sub"]; present {
		if _, ok = jsonString(raw); !ok {
			return vapidClaims{}, errors.New("claims: sub must be a string")
		}
	}
	return c, nil
}

// verifyES256 checks a JWS ES256 signature: R and S as 32 bytes each,
// big-endian (RFC 7518 §3.4), over SHA-256 of the signing input.
func verifyES256(pub *ecdsa.PublicKey, signingInput string, sig []byte) error {
	if len(sig) != 64 {
		return fmt.Errorf("signature of %d bytes; ES256 has 64", len(sig))
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(p256N) >= 0 || s.Cmp(p256N) >= 0 {
		return errors.New("signature out of range")
	}
	h := sha256.Sum256([]byte(signingInput))
	if !ecdsa.Verify(pub, h[:], r, s) {
		return errors.New("signature does not verify with k")
	}
	return nil
}

// strictObject decodes one JSON object whose keys each appear once, in
// this object and in every object nested in it, and returns its members
// undecoded. encoding/json alone keeps the last of two equal keys.
func strictObject(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		// encoding/json would turn bad bytes into U+FFFD, a second
		// reading of the same token.
		return nil, errors.New("not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	tok, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	if err := walkObject(d, 1); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("something after the JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return m, nil
}

// walkObject reads the rest of an object whose '{' has been read,
// refusing a key seen twice in it.
func walkObject(d *json.Decoder, depth int) error {
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q given twice", clip(key))
		}
		seen[key] = true
		if err := walkValue(d, depth); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil { // '}'
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

func walkValue(d *json.Decoder, depth int) error {
	tok, err := d.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return errors.New("JSON nested too deep")
	}
	if delim == '{' {
		return walkObject(d, depth+1)
	}
	for d.More() { // '['
		if err := walkValue(d, depth+1); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil { // ']'
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

// jsonString decodes raw if it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// numericDate reads a NumericDate as VAPID's signers write it: a JSON
// integer of seconds, not negative, no fraction, no exponent, at most
// maxNumericDate.
func numericDate(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || len(raw) > 12 {
		return 0, false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > maxNumericDate {
		return 0, false
	}
	return n, true
}
