package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldpush/herald/mpns"
)

// Hello and state carry the device's minimum urgency, validated like its
// power level; without one the device takes everything.
func TestUrgencyInFrames(t *testing.T) {
	for _, c := range []struct {
		frame string
		ok    bool
		want  mpns.Urgency
	}{
		{`{"type":"state","req":1,"power":"low","urgency":"high"}`, true, mpns.UrgencyHigh},
		{`{"type":"state","req":1,"power":"normal","urgency":"very-low"}`, true, mpns.UrgencyVeryLow},
		{`{"type":"state","req":1,"power":"normal"}`, true, mpns.UrgencyVeryLow},
		{`{"type":"state","req":1,"power":"normal","urgency":"HIGH"}`, false, 0},
		{`{"type":"state","req":1,"power":"normal","urgency":"urgent"}`, false, 0},
		{`{"type":"state","req":1,"power":"normal","urgency":7}`, false, 0},
		{`{"type":"hello","version":2,"last_seq":0,"urgency":"low"}`, true, mpns.UrgencyLow},
		{`{"type":"hello","version":2,"last_seq":0,"urgency":"none"}`, false, 0},
		// A value 1,000 times too long, and one that is empty.
		{`{"type":"state","req":1,"power":"normal","urgency":"` + strings.Repeat("low", 1000) + `"}`, false, 0},
		{`{"type":"hello","version":2,"last_seq":0,"urgency":""}`, true, mpns.UrgencyVeryLow},
	} {
		f, err := DecodeDevice([]byte(c.frame))
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.frame, err, c.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("%s: %v is not ErrBadFrame", c.frame, err)
			}
			continue
		}
		var u string
		switch f := f.(type) {
		case *State:
			u = f.Urgency
		case *Hello:
			u = f.Urgency
		}
		if got := MinUrgency(u); got != c.want {
			t.Errorf("%s: minimum %v, want %v", c.frame, got, c.want)
		}
	}
}
