package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// greeted is a device that said hello and was identified (or enrolled).
type greeted struct {
	hello  *wire.Hello
	dev    store.Device
	secret string // set on enrolment only
	nonce  string // the challenge's
	// told is the device's count of commits told (commitsTold) from
	// before its device read; 0 on enrolment.
	told uint64
}

// handshake sends the challenge, reads the device's hello and identifies
// the device. It answers a device it turns away itself (close 4001, 4002
// or 4003, with a refused frame first when the refusal can be proven) and
// returns false.
func (s *Server) handshake(ctx context.Context, conn *websocket.Conn, source string) (greeted, bool) {
	nonce := wire.NewNonce()
	challenge, err := wire.Encode(wire.Challenge{Type: wire.TypeChallenge, Version: wire.Version, Nonce: nonce})
	if err != nil {
		conn.Close()
		return greeted{}, false
	}
	conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, challenge); err != nil {
		conn.Close()
		return greeted{}, false
	}
	// The device must say hello promptly; closing the server cuts the
	// wait short.
	conn.SetReadDeadline(time.Now().Add(helloTimeout))
	unblock := context.AfterFunc(s.ctx, func() { conn.SetReadDeadline(time.Now()) })
	_, data, err := conn.ReadMessage()
	if !unblock() || err != nil {
		conn.Close()
		return greeted{}, false
	}
	frame, err := wire.DecodeDevice(data)
	if errors.Is(err, wire.ErrVersion) {
		s.metrics.refused(refusedVersion)
		closeConn(conn, wire.CloseProtocol, fmt.Sprintf("unsupported protocol version; this service speaks %d", wire.Version))
		return greeted{}, false
	}
	hello, ok := frame.(*wire.Hello)
	if err != nil || !ok {
		s.metrics.refused(refusedBadHello)
		closeConn(conn, wire.CloseProtocol, "first frame must be a valid hello")
		return greeted{}, false
	}
	if hello.ID == "" {
		if err := checkLastSeq(hello.LastSeq, 0); err != nil {
			s.metrics.refused(refusedSeqAhead)
			closeConn(conn, wire.CloseProtocol, err.Error())
			return greeted{}, false
		}
	}
	g := greeted{hello: hello, nonce: nonce}
	if hello.ID != "" {
		g.told = s.told.count(hello.ID) // before the device is read
	}
	dev, secret, err := s.identify(ctx, hello, nonce, source)
	if err == nil {
		err = checkLastSeq(hello.LastSeq, dev.NextSeq)
	}
	var ref *refusal
	switch {
	case err == nil:
		g.dev, g.secret = dev, secret
		return g, true
	case errors.Is(err, errSeqAhead):
		s.metrics.refused(refusedSeqAhead)
		closeConn(conn, wire.CloseProtocol, err.Error())
	case errors.As(err, &ref):
		s.metrics.refused(ref.reason)
		s.log.Info("device refused", "device", hello.ID, "reason", ref.reason, "source", source, "proven", ref.key != nil)
		if ref.key != nil {
			b, err := wire.Encode(wire.Refused{Type: wire.TypeRefused, Reason: ref.reason,
				Proof: wire.RefusedProof(ref.key, nonce, hello.Nonce, hello.ID, ref.reason)})
			if err == nil {
				conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
				conn.WriteMessage(websocket.TextMessage, b)
			}
		}
		closeConn(conn, wire.CloseUnauthorized, ref.reason)
	case errors.Is(err, errTooManyDevices):
		// An hour: the cap does not lift by itself, and a device that
		// keeps trying should not keep the service busy.
		closeConn(conn, wire.CloseRetryLater, "3600")
	default:
		s.log.Error("hello failed", "err", err)
		closeConn(conn, wire.CloseRetryLater, "60")
	}
	return greeted{}, false
}

// Reasons of herald_service_device_refusals_total besides the 4003 ones
// (wire.Refused*).
const (
	refusedVersion  = "unsupported version"
	refusedBadHello = "bad hello"
	refusedSeqAhead = "last_seq ahead"
)

func newRefusals(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_service_device_refusals_total",
		Help: "Device connections turned away at hello, by reason: unknown device, wrong proof, retired (close 4003), unsupported version, bad hello (close 4002).",
	}, []string{"reason"})
	for _, r := range []string{wire.RefusedUnknown, wire.RefusedBadProof, wire.RefusedRetired, refusedVersion, refusedBadHello} {
		c.WithLabelValues(r) // every reason is exported from the start, at 0
	}
	reg.MustRegister(c)
	return c
}

func (m *metrics) refused(reason string) { m.refusals.WithLabelValues(reason).Inc() }
