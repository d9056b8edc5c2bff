package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

var (
	errUnauthorized   = errors.New("unauthorized")
	errTooManyDevices = errors.New("too many devices from this address")
)

// identify enrols a new device or checks a returning one's secret. The
// secret is returned only on enrolment.
func (s *Server) identify(ctx context.Context, h *wire.Hello, source string) (store.Device, string, error) {
	now := s.cfg.Clock.Now()
	if h.ID == "" {
		if s.enrolCapped(source) {
			// Counting and creating under one lock, so that a burst of
			// enrolments from one address cannot slip past the cap
			// together. Exempt (loopback) enrolments skip it.
			s.enrolMu.Lock()
			defer s.enrolMu.Unlock()
			ok, err := s.enrolAllowed(ctx, source)
			if err != nil {
				return store.Device{}, "", err
			}
			if !ok {
				s.log.Warn("enrolment refused: too many devices from one address", "source", source)
				return store.Device{}, "", errTooManyDevices
			}
		}
		secret := newToken(32)
		d := store.Device{ID: newToken(16), SecretHash: hashSecret(secret), Source: source, CreatedAt: now, LastSeen: now, Power: "normal"}
		if err := s.cfg.Store.CreateDevice(ctx, d); err != nil {
			return store.Device{}, "", err
		}
		s.log.Info("device enrolled", "device", d.ID, "source", source)
		return d, secret, nil
	}
	d, err := s.cfg.Store.Device(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, "", errUnauthorized
	}
	if err != nil {
		return store.Device{}, "", err
	}
	if subtle.ConstantTimeCompare(d.SecretHash, hashSecret(h.Secret)) != 1 {
		return store.Device{}, "", errUnauthorized
	}
	return d, "", nil
}

// hashSecret hashes a device secret. Secrets are 256 random bits, so a
// plain SHA-256 is enough: there is nothing to brute-force.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
