package server

import (
	"context"
	"errors"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

var errTooManyDevices = errors.New("too many devices from this address")

// refusal turns a device away with close 4003. Key is set when the service
// knows the device's key and can prove the refusal to it (a refused frame);
// without it the device may not take the refusal at its word.
type refusal struct {
	reason string
	key    []byte
}

func (r *refusal) Error() string { return "device refused: " + r.reason }

// identify enrols a new device or checks a returning one's proof of its
// secret against the nonce this connection's challenge carried. The
// secret is returned only on enrolment.
func (s *Server) identify(ctx context.Context, h *wire.Hello, nonce, source string) (store.Device, string, error) {
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
		// The service keeps the device's key, SHA-256 of its secret: the
		// secret itself never travels again, and the key is no bearer
		// token (see wire/auth.go for what it is worth to a thief).
		d := store.Device{ID: newToken(16), SecretHash: wire.DeviceKey(secret), Source: source, CreatedAt: now, LastSeen: now, Power: "normal"}
		if err := s.cfg.Store.CreateDevice(ctx, d); err != nil {
			return store.Device{}, "", err
		}
		s.log.Info("device enrolled", "device", d.ID, "source", source)
		return d, secret, nil
	}
	d, err := s.cfg.Store.Device(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, "", &refusal{reason: wire.RefusedUnknown}
	}
	if err != nil {
		return store.Device{}, "", err
	}
	if !wire.ProofEqual(h.Proof, wire.HelloProof(d.SecretHash, nonce, h.Nonce, d.ID)) {
		// Not proven to the device: whoever sent a wrong proof may not
		// be the device, and the device could not check a proof made
		// with a key that does not match its own.
		return store.Device{}, "", &refusal{reason: wire.RefusedBadProof}
	}
	if !d.RetiredAt.IsZero() {
		return store.Device{}, "", &refusal{reason: wire.RefusedRetired, key: d.SecretHash}
	}
	return d, "", nil
}

// RetireDevice refuses a device for good: its channels are deleted, so
// their URIs answer 404 Expired and no sender is told Received for a
// device that will never take it; its live session, if any, ends, and when
// it comes back it is refused with a proof it can check, so that it
// enrols anew.
func (s *Server) RetireDevice(ctx context.Context, id string) error {
	if err := s.cfg.Store.RetireDevice(ctx, id, s.cfg.Clock.Now()); err != nil {
		return err
	}
	// Counted after the commit and before looking for the live session:
	// a session this lookup misses was made live after it, and sees the
	// count changed (retiredSince).
	s.retirements.Add(1)
	s.mu.Lock()
	sess := s.sessions[id]
	s.mu.Unlock()
	if sess != nil {
		sess.close(wire.CloseUnauthorized, wire.RefusedRetired)
		<-sess.done
	}
	s.log.Info("device retired", "device", id)
	return nil
}

// retiredSince reports whether the device, identified when the service had
// seen before retirements, has been retired since: its identification may
// have read it just before the retirement committed, and its session may
// have become live just after RetireDevice looked for it. Retirements are
// rare, so this reads the store only when one happened.
func (s *Server) retiredSince(ctx context.Context, id string, before uint64) bool {
	if s.retirements.Load() == before {
		return false
	}
	d, err := s.cfg.Store.Device(ctx, id)
	if err != nil {
		// Not known to be retired; a store that fails here fails the
		// session's next step too.
		return false
	}
	return !d.RetiredAt.IsZero()
}
