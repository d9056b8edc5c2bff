package channel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/wire"
)

// Errors of the handshake a caller may act on.
var (
	// ErrRefused: the service proved it refuses the device's identity; the
	// identity is forgotten and the next connection enrols anew.
	ErrRefused = errors.New("channel: the service refused this device's identity")
	// ErrRefusalUnproven: a refusal arrived that the link cannot tell from
	// a forgery (plain http, no proof); the identity is kept.
	ErrRefusalUnproven = errors.New("channel: refusal not proven; identity kept")
	// ErrServiceUnproven: the welcome did not prove that the service knows
	// the device's key, so it is not the service the device enrolled with.
	ErrServiceUnproven = errors.New("channel: the service did not prove it knows this device")
)

// handshake answers the service's challenge with the device's hello and
// reads the welcome. An enrolled device proves its secret without sending
// it, and checks the welcome's proof in turn; an enrolment stores the new
// identity before it is used.
func (l *Link) handshake(ctx context.Context, c *conn, id Identity, lastSeq uint64, power string) (*wire.Welcome, error) {
	c.ws.SetReadDeadline(time.Now().Add(dialTimeout))
	frame, err := c.read()
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	challenge, ok := frame.(*wire.Challenge)
	if !ok {
		return nil, fmt.Errorf("%w: challenge: got %T", wire.ErrBadFrame, frame)
	}
	hello := wire.Hello{Type: wire.TypeHello, Version: wire.Version, LastSeq: lastSeq, Power: power}
	hello.Urgency = l.minUrgency(ctx)
	// The service bounds how long its frames may stay unacknowledged by it.
	hello.Heartbeat = int(l.interval() / time.Second)
	var key []byte
	if id.ID != "" {
		key = wire.DeviceKey(id.Secret)
		hello.ID, hello.Nonce = id.ID, wire.NewNonce()
		hello.Proof = wire.HelloProof(key, challenge.Nonce, hello.Nonce, id.ID)
	}
	if err := c.writeNow(hello); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	frame, err = c.read()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code == wire.CloseUnauthorized {
			// A bare close code: anyone in the path can send one.
			return nil, l.refused(ctx, id, ce.Text, l.verified() || l.cfg.TrustRefusals)
		}
		return nil, fmt.Errorf("welcome: %w", err)
	}
	switch f := frame.(type) {
	case *wire.Refused:
		proven := key != nil && wire.ProofEqual(f.Proof, wire.RefusedProof(key, challenge.Nonce, hello.Nonce, id.ID, f.Reason))
		return nil, l.refused(ctx, id, f.Reason, proven || l.verified() || l.cfg.TrustRefusals)
	case *wire.Welcome:
		if id.ID == "" {
			if f.Secret == "" {
				return nil, fmt.Errorf("%w: enrolment welcome without a secret", wire.ErrBadFrame)
			}
			if err := l.cfg.Handler.Enrolled(ctx, Identity{ID: f.ID, Secret: f.Secret}); err != nil {
				return nil, fmt.Errorf("saving identity: %w", err)
			}
			l.log.Info("enrolled with notification service", "device", f.ID)
		} else if f.ID != id.ID || !wire.ProofEqual(f.Proof, wire.WelcomeProof(key, challenge.Nonce, hello.Nonce, id.ID)) {
			return nil, ErrServiceUnproven
		}
		c.ws.SetReadDeadline(time.Time{})
		return f, nil
	}
	return nil, fmt.Errorf("%w: welcome: got %T", wire.ErrBadFrame, frame)
}

// refused handles the service turning the device's identity away. Only a
// proven refusal makes the device forget it: forgetting on a forged one
// would make the phone enrol anew and give up its channel URIs.
func (l *Link) refused(ctx context.Context, id Identity, reason string, proven bool) error {
	if id.ID == "" {
		return fmt.Errorf("channel: enrolment refused: %q", reason)
	}
	if !proven {
		l.log.Warn("the notification service refused this device without proof; keeping its identity",
			"device", id.ID, "reason", reason)
		return fmt.Errorf("%w: %q", ErrRefusalUnproven, reason)
	}
	l.log.Warn("the notification service refused this device's identity; enrolling again", "device", id.ID, "reason", reason)
	if err := l.cfg.Handler.Rejected(ctx); err != nil {
		return fmt.Errorf("forgetting refused identity: %w", err)
	}
	return fmt.Errorf("%w: %q", ErrRefused, reason)
}
