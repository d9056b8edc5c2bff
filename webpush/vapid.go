package webpush

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RFC 8292 errors: ErrVAPIDMissing when a restricted channel's POST
// carries no vapid authorization (answered 401), ErrVAPIDInvalid when it
// carries one that does not hold (answered 403).
var (
	ErrVAPIDMissing = errors.New("webpush: vapid authorization missing")
	ErrVAPIDInvalid = errors.New("webpush: vapid authorization invalid")
	// ErrBadKey: an application server key that is not an uncompressed
	// P-256 point in base64url.
	ErrBadKey = errors.New("webpush: bad application server key")
)

// MaxVAPIDExpiry is how far ahead a token's exp may be (RFC 8292 §2).
const MaxVAPIDExpiry = 24 * time.Hour

// maxAuthorization bounds the header the parser reads; a real one is
// about 400 bytes.
const maxAuthorization = 4096

// ParseKey decodes an application server key: the 65-byte uncompressed
// P-256 point, base64url with or without padding.
func ParseKey(s string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if _, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return raw, nil
}

// NormalizeKey returns a key in the one spelling the service stores
// (unpadded base64url), or ErrBadKey.
func NormalizeKey(s string) (string, error) {
	raw, err := ParseKey(s)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// VerifyVAPID checks a POST's Authorization header against a channel
// restricted to the application server key channelKey (as NormalizeKey
// spells it): scheme vapid with t (a JWT) and k (the key), each given
// once; k equal to channelKey; the JWT signed ES256 by k, with exp
// present, not past and at most MaxVAPIDExpiry after now, and aud the push
// resource's origin. The JWT is read strictly (see parseVAPIDToken).
// Unknown parameters are ignored (RFC 8292 §3).
func VerifyVAPID(authorization, channelKey, origin string, now time.Time) error {
	authorization = strings.TrimSpace(authorization)
	if authorization == "" {
		return fmt.Errorf("%w: the channel takes only messages signed with its application server key", ErrVAPIDMissing)
	}
	if len(authorization) > maxAuthorization {
		return fmt.Errorf("%w: authorization of %d bytes", ErrVAPIDInvalid, len(authorization))
	}
	scheme, params, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "vapid") {
		return fmt.Errorf("%w: authorization scheme %q is not vapid", ErrVAPIDMissing, clip(scheme))
	}
	var t, k string
	var seenT, seenK bool
	for _, p := range strings.Split(params, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		var seen *bool
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "t":
			t, seen = value, &seenT
		case "k":
			k, seen = value, &seenK
		default:
			continue
		}
		// Two of one parameter leave it open which one a reader takes;
		// an intermediary and the service must not disagree.
		if *seen {
			return fmt.Errorf("%w: parameter %s given twice", ErrVAPIDInvalid, strings.ToLower(strings.TrimSpace(name)))
		}
		*seen = true
	}
	if t == "" || k == "" {
		return fmt.Errorf("%w: vapid needs both t and k", ErrVAPIDInvalid)
	}
	raw, err := ParseKey(k)
	if err != nil {
		return fmt.Errorf("%w: k: %v", ErrVAPIDInvalid, err)
	}
	want, err := ParseKey(channelKey)
	if err != nil || !bytes.Equal(raw, want) {
		return fmt.Errorf("%w: k is not the channel's application server key", ErrVAPIDInvalid)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return fmt.Errorf("%w: k: %v", ErrVAPIDInvalid, err)
	}
	claims, err := parseVAPIDToken(t, pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVAPIDInvalid, err)
	}
	if claims.aud != origin {
		return fmt.Errorf("%w: aud %q is not this push service's origin", ErrVAPIDInvalid, clip(claims.aud))
	}
	exp := time.Unix(claims.exp, 0)
	if !now.Before(exp) {
		return fmt.Errorf("%w: the token expired at %s", ErrVAPIDInvalid, exp.UTC().Format(time.RFC3339))
	}
	if exp.After(now.Add(MaxVAPIDExpiry)) {
		return fmt.Errorf("%w: exp is more than 24 hours ahead", ErrVAPIDInvalid)
	}
	if claims.hasNbf && now.Before(time.Unix(claims.nbf, 0)) {
		return fmt.Errorf("%w: the token is not valid before %s", ErrVAPIDInvalid, time.Unix(claims.nbf, 0).UTC().Format(time.RFC3339))
	}
	return nil
}
