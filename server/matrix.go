package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/heraldpush/herald/mpns"
)

// MatrixNotifyPath is the Matrix push gateway (Matrix Push Gateway API,
// /_matrix/push/v1/notify) that a UnifiedPush app such as NeoChat finds at
// its endpoint's origin: GET says this service is one, POST forwards a
// homeserver's notification to the channels its pushkeys name.
const MatrixNotifyPath = "/_matrix/push/v1/notify"

// MaxMatrixDevices bounds the devices (pushkeys) one gateway request may
// name: a homeserver sends one per pusher, and each costs a delivery.
const MaxMatrixDevices = 16

// MatrixRequest is the part of a homeserver's notification the gateway
// reads; the body is forwarded whole, as the app's message.
type MatrixRequest struct {
	Notification struct {
		EventID string `json:"event_id"`
		Devices []struct {
			PushKey string `json:"pushkey"`
		} `json:"devices"`
	} `json:"notification"`
}

// MatrixResponse lists the pushkeys the homeserver should stop using.
type MatrixResponse struct {
	Rejected []string `json:"rejected"`
}

// matrixDiscovery is what UnifiedPush apps look for (NeoChat uses push
// only when it is there).
const matrixDiscovery = `{"unifiedpush":{"gateway":"matrix"}}` + "\n"

func (s *Server) handleMatrix(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "application/json")
		rd := strings.NewReader(matrixDiscovery)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			rd.WriteTo(w)
		}
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		matrixError(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "GET or POST "+MatrixNotifyPath)
		return
	}
	req, body, err := s.readMatrix(w, r)
	if err != nil {
		writeMatrix(w, asRefusal(err, s.guard.lim.RetryAfter))
		return
	}
	// The forwarded notification is raw until a Web Push kind exists:
	// opaque bytes for the app, which is what a UnifiedPush app gets.
	n := &mpns.Notification{Kind: mpns.KindRaw, Delay: mpns.Immediate, Body: body}
	if validMessageID(req.Notification.EventID) {
		// The event id names it, so its status can be asked for.
		n.MessageID = req.Notification.EventID
	}
	resp := MatrixResponse{Rejected: []string{}}
	seen := map[string]bool{}
	failed, unavailableAll := 0, true
	for _, d := range req.Notification.Devices {
		key := d.PushKey
		if seen[key] {
			continue
		}
		seen[key] = true
		token, ok := s.matrixToken(key)
		if !ok {
			resp.Rejected = append(resp.Rejected, key)
			unavailableAll = false
			continue
		}
		a, err := s.accept(r.Context(), s.mpnsSubmission(r, token, false, n))
		o := mpnsReceived
		o.Device = a.device
		var ref *senderRefusal
		if err != nil {
			ref = asRefusal(err, s.guard.lim.RetryAfter)
			o = mpnsOutcome(ref)
		}
		s.metrics.notification(string(n.Kind), o)
		switch matrixVerdict(ref) {
		case pushkeyRejected:
			resp.Rejected = append(resp.Rejected, key)
			unavailableAll = false
		case pushkeyRetry:
			failed++
		default:
			unavailableAll = false
			if ref != nil {
				s.log.Debug("matrix notification not queued", "refusal", ref.kind, "reason", ref.reason)
			}
		}
	}
	if failed > 0 && unavailableAll {
		// Nothing went anywhere: the homeserver retries later.
		writeMatrix(w, s.unavailable(errStoreUnavailable))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(resp)
}

// pushkeyVerdict is what a homeserver should make of one pushkey's
// delivery.
type pushkeyVerdict uint8

const (
	pushkeyKept     pushkeyVerdict = iota // delivered, or dropped for the device's sake
	pushkeyRejected                       // nothing sent to it will ever arrive
	pushkeyRetry                          // the service could not take it now
)

// matrixVerdict maps a delivery's refusal (nil: queued) to its pushkey's
// fate.
func matrixVerdict(r *senderRefusal) pushkeyVerdict {
	if r == nil {
		return pushkeyKept
	}
	switch r.kind {
	case refNoChannel, refForbidden, refUnauthenticated:
		// Gone, or a channel that takes only its application server's
		// signed Web Push: either way nothing this gateway sends will
		// ever arrive, so the homeserver drops the key.
		return pushkeyRejected
	case refUnavailable, refSourceBusy:
		return pushkeyRetry
	}
	// Dropped for the device's sake (full queue, critical power, quota,
	// rate, inactive): the pushkey is still good, so the homeserver
	// keeps it.
	return pushkeyKept
}

// matrixStatus is the status and errcode of a gateway request refused as
// a whole.
func matrixStatus(r *senderRefusal) (int, string) {
	switch r.kind {
	case refMalformed:
		return http.StatusBadRequest, "M_BAD_JSON"
	case refTooLarge:
		return http.StatusRequestEntityTooLarge, "M_TOO_LARGE"
	case refNoChannel:
		return http.StatusNotFound, "M_NOT_FOUND"
	case refUnauthenticated:
		return http.StatusUnauthorized, "M_UNAUTHORIZED"
	case refForbidden:
		return http.StatusForbidden, "M_FORBIDDEN"
	case refRateLimited, refQuotaUsed, refQueueFull:
		return http.StatusTooManyRequests, "M_LIMIT_EXCEEDED"
	case refSuppressed, refInactive:
		// Taken and dropped for the device's sake, as the pushkey's
		// verdict says.
		return http.StatusOK, ""
	}
	return http.StatusServiceUnavailable, "M_UNKNOWN"
}

// writeMatrix answers a gateway request refused as a whole.
func writeMatrix(w http.ResponseWriter, r *senderRefusal) {
	code, errcode := matrixStatus(r)
	if code == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, `{"rejected":[]}`+"\n")
		return
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterHeader(r.retryAfter))
	}
	if r.unread {
		w.Header().Set("Connection", "close")
	}
	matrixError(w, code, errcode, r.reason)
}

// readMatrix admits, reads and checks a gateway POST.
func (s *Server) readMatrix(w http.ResponseWriter, r *http.Request) (req *MatrixRequest, body []byte, err error) {
	lim := s.guard.lim
	if r.ContentLength > int64(lim.MaxBodyBytes) {
		return nil, nil, refuse(refTooLarge, fmt.Sprintf("body larger than %d bytes", lim.MaxBodyBytes))
	}
	if err := s.admit(w, r, 1, int64(lim.MaxBodyBytes)); err != nil {
		return nil, nil, err
	}
	body, err = s.readBody(r, int64(lim.MaxBodyBytes)+1)
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errReadsBusy):
		return nil, nil, &senderRefusal{kind: refSourceBusy, reason: err.Error(), retryAfter: lim.RetryAfter, unread: true}
	case errors.As(err, &tooBig) || len(body) > lim.MaxBodyBytes:
		return nil, nil, refuse(refTooLarge, fmt.Sprintf("body larger than %d bytes", lim.MaxBodyBytes))
	case err != nil:
		return nil, nil, refuse(refMalformed, "reading body: "+err.Error())
	}
	req, err = parseMatrix(body)
	if err != nil {
		return nil, nil, refuse(refMalformed, err.Error())
	}
	return req, body, nil
}

// parseMatrix reads a homeserver's notification: JSON naming 1 to
// MaxMatrixDevices devices.
func parseMatrix(body []byte) (*MatrixRequest, error) {
	req := &MatrixRequest{}
	if err := json.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("not a Matrix push notification: %w", err)
	}
	switch n := len(req.Notification.Devices); {
	case n == 0:
		return nil, errors.New("notification.devices is empty")
	case n > MaxMatrixDevices:
		return nil, fmt.Errorf("%d devices; the limit is %d", n, MaxMatrixDevices)
	}
	return req, nil
}

// matrixToken is the channel token of a pushkey that is a channel URI of
// this service. Authenticated channels take only their own service, so a
// homeserver cannot reach them.
func (s *Server) matrixToken(pushkey string) (string, bool) {
	base := s.cfg.PublicURL + ThrottledPath
	if len(pushkey) > MaxURILength || !strings.HasPrefix(pushkey, base) {
		return "", false
	}
	token, authenticated := tokenFromPath(ThrottledPath + strings.TrimPrefix(pushkey, base))
	return token, token != "" && !authenticated
}

func matrixError(w http.ResponseWriter, code int, errcode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"errcode": errcode, "error": msg})
}
