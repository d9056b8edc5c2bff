package wire

import (
	"bytes"
	"math"
	"strconv"
)

// decodeHello decodes a hello exactly as Encode writes it (every device
// sends one per connection, and a node taking devices back reads
// thousands a second) in one pass without reflection: the general
// decoder's two passes (the type, then the frame) cost the service more
// than the proof it checks. Anything else, a hello spaced, ordered or
// escaped otherwise included, is not decoded here (ok false) and goes the
// general way, which decodes every frame this accepts to the same hello
// (FuzzDecodeHello). Validation is the caller's, as for the general way.
func decodeHello(b []byte) (h *Hello, ok bool) {
	if len(b) > MaxFrameSize {
		return nil, false // the general way says why
	}
	p := fastParser{b: b}
	var v Hello
	if !p.lit(`{"type":"hello","version":`) {
		return nil, false
	}
	version, ok := p.uint(math.MaxInt64)
	if !ok {
		return nil, false
	}
	v.Type, v.Version = TypeHello, int(version)
	if p.lit(`,"id":`) && !p.str(&v.ID) ||
		p.lit(`,"nonce":`) && !p.str(&v.Nonce) ||
		p.lit(`,"proof":`) && !p.str(&v.Proof) ||
		!p.lit(`,"last_seq":`) {
		return nil, false
	}
	if v.LastSeq, ok = p.uint(math.MaxUint64); !ok {
		return nil, false
	}
	if p.lit(`,"power":`) && !p.str(&v.Power) ||
		p.lit(`,"urgency":`) && !p.str(&v.Urgency) {
		return nil, false
	}
	// A secret (refused by validation) goes the general way.
	if p.lit(`,"heartbeat":`) {
		hb, ok := p.uint(math.MaxInt64)
		if !ok || hb == 0 { // omitempty: Encode leaves a zero out
			return nil, false
		}
		v.Heartbeat = int(hb)
	}
	if !p.lit(`}`) || len(p.b) != 0 {
		return nil, false
	}
	return &v, true
}

// fastParser reads JSON written by Encode, front to back, refusing
// (false) whatever Encode would have written otherwise.
type fastParser struct{ b []byte }

// lit consumes s if the input starts with it.
func (p *fastParser) lit(s string) bool {
	if len(p.b) < len(s) || string(p.b[:len(s)]) != s {
		return false
	}
	p.b = p.b[len(s):]
	return true
}

// uint reads a non-negative integer up to limit, as Encode writes it: no
// sign, no leading zero, no fraction or exponent.
func (p *fastParser) uint(limit uint64) (uint64, bool) {
	i := 0
	var n uint64
	for ; i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9'; i++ {
		d := uint64(p.b[i] - '0')
		if n > (limit-d)/10 {
			return 0, false // out of range: the general decoder says so
		}
		n = n*10 + d
	}
	if i == 0 || i > 1 && p.b[0] == '0' {
		return 0, false
	}
	p.b = p.b[i:]
	return n, true
}

// str reads a non-empty string (omitempty: Encode leaves an empty one
// out) of printable ASCII that Encode writes as it is: no escapes, and
// none of <, > and & (which Encode writes escaped).
func (p *fastParser) str(s *string) bool {
	if len(p.b) < 2 || p.b[0] != '"' {
		return false
	}
	end := bytes.IndexByte(p.b[1:], '"')
	if end <= 0 {
		return false
	}
	raw := p.b[1 : 1+end]
	if !plain(raw) {
		return false
	}
	*s = string(raw)
	p.b = p.b[end+2:]
	return true
}

// encodeChallenge and encodeWelcome write the two frames of every hello
// as json.Marshal would, without its reflection, when every string in
// them is one json.Marshal writes as it is (plain); otherwise ok is false
// and Encode marshals them (FuzzEncodeHandshake).
func encodeChallenge(c Challenge) (b []byte, ok bool) {
	if !plain(c.Type) || !plain(c.Nonce) {
		return nil, false
	}
	b = make([]byte, 0, 48+len(c.Type)+len(c.Nonce))
	b = append(b, `{"type":"`...)
	b = append(b, c.Type...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, int64(c.Version), 10)
	b = append(b, `,"nonce":"`...)
	b = append(b, c.Nonce...)
	return append(b, `"}`...), true
}

func encodeWelcome(w Welcome) (b []byte, ok bool) {
	if !plain(w.Type) || !plain(w.ID) || !plain(w.Secret) || !plain(w.Proof) {
		return nil, false
	}
	b = make([]byte, 0, 96+len(w.Type)+len(w.ID)+len(w.Secret)+len(w.Proof))
	b = append(b, `{"type":"`...)
	b = append(b, w.Type...)
	b = append(b, `","id":"`...)
	b = append(b, w.ID...)
	b = append(b, '"')
	if w.Secret != "" {
		b = append(b, `,"secret":"`...)
		b = append(b, w.Secret...)
		b = append(b, '"')
	}
	if w.Proof != "" {
		b = append(b, `,"proof":"`...)
		b = append(b, w.Proof...)
		b = append(b, '"')
	}
	b = append(b, `,"min_heartbeat":`...)
	b = strconv.AppendInt(b, int64(w.MinHeartbeat), 10)
	b = append(b, `,"max_idle":`...)
	b = strconv.AppendInt(b, int64(w.MaxIdle), 10)
	return append(b, '}'), true
}

// plain says whether json.Marshal writes s as it is between its quotes:
// printable ASCII without the characters it escapes.
func plain[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
