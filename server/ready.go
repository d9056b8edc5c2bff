package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/heraldpush/herald/server/store"
)

// Paths of the probes scripts and load balancers use.
const (
	// ReadyPath answers 200 once the node can take senders and devices,
	// 503 with what it waits for until then (a cluster's store waiting
	// for its NATS servers) and while it shuts down.
	ReadyPath = "/readyz"
	// HealthPath answers 200 while the process serves: alive, whether or
	// not ready.
	HealthPath = "/healthz"
)

// Probe is the body of both probes: Service names the program, so a
// script knows it reached a heraldsvc and not whatever else holds the
// port.
type Probe struct {
	Service    string `json:"service"`
	Ready      bool   `json:"ready"`
	WaitingFor string `json:"waiting_for,omitempty"`
}

var errShuttingDown = errors.New("shutting down")

// Ready returns nil when the node can serve senders and devices: its
// store is usable and it is not shutting down.
func (s *Server) Ready() error {
	// Close cancels ctx as it sets closed; ctx needs no lock, and this
	// runs for every notification.
	if s.ctx.Err() != nil {
		return errShuttingDown
	}
	if s.readiness != nil {
		return s.readiness.Ready()
	}
	return nil
}

// notReady is what a refused sender or device is told, or "" when ready.
// A store's readiness names what it waits for, never an address or a
// credential, so it can be shown to anyone.
func (s *Server) notReady() string {
	err := s.Ready()
	if err == nil {
		return ""
	}
	return "not ready: " + strings.TrimSuffix(err.Error(), ": "+store.ErrNotReady.Error())
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	p := Probe{Service: "heraldsvc", Ready: true}
	code := http.StatusOK
	if why := s.notReady(); why != "" {
		p.Ready, p.WaitingFor, code = false, strings.TrimPrefix(why, "not ready: "), http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeProbe(w, code, p)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeProbe(w, http.StatusOK, Probe{Service: "heraldsvc", Ready: s.Ready() == nil})
}

// probeOnly answers anything but GET and HEAD with 405.
func probeOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "GET "+r.URL.Path, http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	}
}

func writeProbe(w http.ResponseWriter, code int, p Probe) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(p)
}
