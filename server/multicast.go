package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/heraldpush/herald/mpns"
)

// MulticastPath takes one notification for many channels: Herald's
// extension to MPNS (GCM had it; MPNS made senders POST once per channel).
const MulticastPath = "/multicast"

// MulticastRequest is the body of a POST to MulticastPath. The MPNS headers
// (X-WindowsPhone-Target, X-NotificationClass, X-MessageID) go on the
// request as for a single channel. The payload is Payload as text or, for
// raw bytes that are not UTF-8, PayloadBase64; not both.
type MulticastRequest struct {
	Channels      []string `json:"channels"`
	Payload       string   `json:"payload,omitempty"`
	PayloadBase64 []byte   `json:"payload_base64,omitempty"`
}

// MulticastResult is one channel's outcome, with the status code and
// tokens a single POST to that channel would have got.
type MulticastResult struct {
	Channel      string `json:"channel"`
	Status       int    `json:"status"`
	Notification string `json:"notification,omitempty"`
	Subscription string `json:"subscription,omitempty"`
	Device       string `json:"device,omitempty"`
	Error        string `json:"error,omitempty"`
}

// MulticastResponse answers a multicast, its results in request order.
type MulticastResponse struct {
	MessageID string            `json:"message_id,omitempty"`
	Results   []MulticastResult `json:"results"`
}

// multicastWorkers is how many channels of one multicast are delivered at
// once: enough for the store's group commit to batch them.
const multicastWorkers = 16

func (s *Server) handleMulticast(w http.ResponseWriter, r *http.Request) {
	messageID := echoedMessageID(r)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		outcome{Code: http.StatusMethodNotAllowed, Message: "only POST is allowed on " + MulticastPath}.write(w, messageID)
		return
	}
	req, err := s.readMulticast(w, r)
	if err == nil {
		if err = s.admit(w, r, len(req.Channels), 0); err == nil {
			err = s.multicast(w, r, req, messageID)
		}
	}
	if err == nil {
		return // answered
	}
	ref := asRefusal(err, s.guard.lim.RetryAfter)
	s.log.Debug("multicast refused", "refusal", ref.kind, "reason", ref.reason)
	writeMPNS(w, ref, messageID)
}

// readMulticast reads and checks the request body.
func (s *Server) readMulticast(w http.ResponseWriter, r *http.Request) (*MulticastRequest, error) {
	lim := s.guard.lim
	// Every channel URI at its longest, JSON-quoted, plus the payload
	// base64-encoded.
	maxBody := int64(lim.MaxMulticast*(MaxURILength+8) + 2*lim.MaxBodyBytes + 1024)
	if r.ContentLength > maxBody {
		return nil, refuse(refTooLarge, fmt.Sprintf("multicast body larger than %d bytes", maxBody))
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := s.readBody(r, maxBody+1)
	if errors.Is(err, errReadsBusy) {
		return nil, &senderRefusal{kind: refSourceBusy, reason: err.Error(), retryAfter: s.guard.lim.RetryAfter, unread: true}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, refuse(refTooLarge, fmt.Sprintf("multicast body larger than %d bytes", maxBody))
		}
		return nil, refuse(refMalformed, "reading body: "+err.Error())
	}
	var req MulticastRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, refuse(refMalformed, "multicast body is not the JSON {\"channels\":[...],\"payload\":...}: "+err.Error())
	}
	switch {
	case len(req.Channels) == 0:
		return nil, refuse(refMalformed, "multicast names no channels")
	case len(req.Channels) > lim.MaxMulticast:
		return nil, refuse(refMalformed, fmt.Sprintf("multicast names %d channels; the limit is %d", len(req.Channels), lim.MaxMulticast))
	case req.Payload != "" && len(req.PayloadBase64) > 0:
		return nil, refuse(refMalformed, "multicast has both payload and payload_base64")
	}
	return &req, nil
}

// multicast delivers one payload to every channel and writes the results;
// it returns a refusal only when the request as a whole fails.
func (s *Server) multicast(w http.ResponseWriter, r *http.Request, req *MulticastRequest, messageID string) error {
	payload := req.PayloadBase64
	if len(payload) == 0 {
		payload = []byte(req.Payload)
	}
	if len(payload) > s.guard.lim.MaxBodyBytes {
		return refuse(refTooLarge, fmt.Sprintf("payload larger than %d bytes", s.guard.lim.MaxBodyBytes))
	}
	n, err := mpns.ParseRequest(r.Header, payload)
	if err != nil {
		return refuse(refMalformed, err.Error())
	}

	results := make([]MulticastResult, len(req.Channels))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(multicastWorkers, len(req.Channels)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = s.multicastOne(r, req.Channels[i], n)
			}
		}()
	}
	for i := range req.Channels {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	h := w.Header()
	h.Set("Content-Type", "application/json")
	if messageID != "" {
		h.Set(mpns.HeaderMessageID, messageID)
	}
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(MulticastResponse{MessageID: messageID, Results: results})
	return nil
}

// multicastOne delivers to one channel URI as a single POST would, the
// request's client certificate standing for every authenticated channel.
func (s *Server) multicastOne(r *http.Request, uri string, n *mpns.Notification) MulticastResult {
	a, err := s.multicastSubmit(r, uri, n)
	o := mpnsReceived
	o.Device = a.device
	if err != nil {
		o = mpnsOutcome(asRefusal(err, s.guard.lim.RetryAfter))
	}
	s.metrics.notification(string(n.Kind), o)
	res := MulticastResult{Channel: uri, Status: o.Code, Notification: o.Notification, Subscription: o.Subscription, Device: o.Device}
	if o.Code != http.StatusOK {
		res.Error = o.Message
	}
	return res
}

func (s *Server) multicastSubmit(r *http.Request, uri string, n *mpns.Notification) (accepted, error) {
	u, err := url.Parse(uri)
	if len(uri) > MaxURILength || err != nil {
		return accepted{}, refuse(refMalformed, "not a channel URI")
	}
	token, authenticated := tokenFromPath(u.Path)
	switch {
	case token == "":
		return accepted{}, refuse(refNoChannel, "no such channel")
	case authenticated && r.TLS == nil:
		return accepted{}, refuse(refUnauthenticated, "authenticated channel: "+errNoClientCert.Error())
	}
	return s.accept(r.Context(), s.mpnsSubmission(r, token, authenticated, n))
}
