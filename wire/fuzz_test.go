package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// Frames as the daemon and the service really send them, and a few that
// neither would.
var deviceSeeds = []string{
	`{"type":"hello","version":2,"last_seq":0}`,
	`{"type":"hello","version":2,"id":"dev","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","proof":"n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg","last_seq":42,"power":"low"}`,
	`{"type":"hello","version":1,"id":"dev","secret":"s3cret","last_seq":42,"power":"low"}`,
	`{"type":"hello","version":2,"power":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`,
	`{"type":"hello","version":2,"id":"dev","nonce":"short","proof":"short"}`,
	`{"type":"hello","version":2,"heartbeat":240}`,
	`{"type":"hello","version":2,"heartbeat":-5}`,
	`{"type":"register","req":1,"app":"news","channel":"main"}`,
	`{"type":"register","req":2,"app":"bank","channel":"main","service_name":"contoso","renew":true}`,
	`{"type":"unregister","req":3,"channel_id":"ch1"}`,
	`{"type":"bind","req":4,"channel_id":"ch1","toast":true,"tile":true,"domains":["https://img.example.com"],"pinned":["/Sec.xaml?x=1"]}`,
	`{"type":"state","req":5,"power":"critical"}`,
	`{"type":"ack","seq":18446744073709551615}`,
	`{"type":"ack","seq":-1}`,
	`{"type":"register","req":1,"app":"a/b","channel":"main"}`,
	`{"TYPE":"hello","type":"ack","seq":1}`,
	`[]`,
	``,
}

var serviceSeeds = []string{
	`{"type":"challenge","version":2,"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
	`{"type":"challenge","version":3,"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
	`{"type":"refused","reason":"retired","proof":"n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg"}`,
	`{"type":"welcome","id":"dev","proof":"n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg","min_heartbeat":60,"max_idle":3600}`,
	`{"type":"welcome","id":"dev","secret":"s3cret","min_heartbeat":60,"max_idle":3600}`,
	`{"type":"registered","req":1,"channel_id":"ch1","uri":"http://127.0.0.1:8790/throttledthirdparty/01.00/AAAA"}`,
	`{"type":"registered","req":1,"code":"QuotaExceeded","message":"30 channels"}`,
	`{"type":"notify","notifications":[{"seq":1,"channel_id":"ch1","kind":"toast","class":2,"message_id":"m","body":"PHdwOk5vdGlmaWNhdGlvbi8+"}]}`,
	`{"type":"notify","notifications":[{"seq":2,"kind":"raw","body":"eA=="},{"seq":2,"kind":"raw","body":"eA=="}]}`,
	`{"type":"notify","notifications":[{"seq":1,"kind":"raw","body":"not base64!"}]}`,
	`{"type":"uri","channel_id":"ch1","uri":"http://x/y"}`,
	`{"type":"expired","channel_id":"ch1"}`,
	`{"type":"result","req":4,"code":"NotFound"}`,
	`{"type":"welcome"}`,
	`{"type":"hello"}`,
}

// checkDecoded holds for either side: a refused frame is ErrBadFrame, and
// an accepted one encodes to a frame that decodes to the same thing.
func checkDecoded(t *testing.T, data []byte, decode func([]byte) (any, error)) {
	v, err := decode(data)
	if err != nil {
		if v != nil {
			t.Fatalf("frame returned with error %v", err)
		}
		if !errors.Is(err, ErrBadFrame) {
			t.Fatalf("error %v is not ErrBadFrame", err)
		}
		return
	}
	if len(data) > MaxFrameSize {
		t.Fatalf("accepted a frame of %d bytes", len(data))
	}
	b, err := Encode(v)
	if err != nil {
		t.Fatalf("re-encoding %T: %v", v, err)
	}
	again, err := decode(b)
	if err != nil {
		t.Fatalf("re-encoded frame %s refused: %v", b, err)
	}
	b2, _ := Encode(again)
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the frame:\n%s\n%s", b, b2)
	}
}

func FuzzDecodeDevice(f *testing.F) {
	for _, s := range deviceSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, DecodeDevice)
		v, err := DecodeDevice(data)
		if err != nil {
			return
		}
		switch f := v.(type) {
		case *Register:
			if !ValidName(f.App) || !ValidName(f.Channel) || (f.ServiceName != "" && !ValidName(f.ServiceName)) {
				t.Fatalf("accepted register with bad names: %+v", f)
			}
		case *Hello:
			if f.Version != Version || len(f.ID) > MaxIDLength || (f.ID != "") != (f.Proof != "") ||
				(f.Power != "" && !validPower(f.Power)) {
				t.Fatalf("accepted bad hello: %+v", f)
			}
		case *Bind:
			if len(f.Domains) > MaxDomains || len(f.Pinned) > MaxPinned {
				t.Fatalf("accepted bind with %d domains, %d pinned", len(f.Domains), len(f.Pinned))
			}
		case *State:
			if f.Power != "normal" && f.Power != "low" && f.Power != "critical" {
				t.Fatalf("accepted power %q", f.Power)
			}
		}
	})
}

func FuzzDecodeService(f *testing.F) {
	for _, s := range serviceSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, DecodeService)
		v, err := DecodeService(data)
		if err != nil {
			return
		}
		if n, ok := v.(*Notify); ok {
			var last uint64
			for _, x := range n.Notifications {
				if x.Seq <= last {
					t.Fatalf("accepted notify with sequence %d after %d", x.Seq, last)
				}
				last = x.Seq
			}
		}
	})
}

// FuzzDecodeAck checks the ack fast path against the general decoder: a
// frame it decodes, the general way decodes to the same ack.
func FuzzDecodeAck(f *testing.F) {
	for _, s := range []string{
		`{"type":"ack","seq":0}`,
		`{"type":"ack","seq":42}`,
		`{"type":"ack","seq":18446744073709551615}`,
		`{"type":"ack","seq":18446744073709551616}`,
		`{"type":"ack","seq":007}`,
		`{"type":"ack","seq":-1}`,
		`{"type":"ack","seq":1.5}`,
		`{"type":"ack","seq":1e3}`,
		`{"type":"ack","seq":}`,
		`{"type":"ack","seq":"1"}`,
		`{"type":"ack","seq":1,"seq":2}`,
		`{"type":"ack", "seq":1}`,
		`{"seq":1,"type":"ack"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeAck(data)
		if !ok {
			return
		}
		var slow Ack
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path took %q, the general decoder refuses it: %v", data, err)
		}
		if slow != *fast || slow.Type != TypeAck {
			t.Fatalf("%q: fast path %+v, general decoder %+v", data, *fast, slow)
		}
		if enc, err := Encode(slow); err != nil || string(enc) != string(data) {
			t.Fatalf("%q is not how Encode writes %+v (%s)", data, slow, enc)
		}
	})
}

func TestDecodeAck(t *testing.T) {
	for _, tc := range []struct {
		frame string
		seq   uint64
		fast  bool // taken by the fast path
		ok    bool // decoded at all
	}{
		{`{"type":"ack","seq":0}`, 0, true, true},
		{`{"type":"ack","seq":42}`, 42, true, true},
		{`{"type":"ack","seq":18446744073709551615}`, 1<<64 - 1, true, true},
		{`{"type":"ack","seq":18446744073709551616}`, 0, false, false},
		{`{"type":"ack","seq":99999999999999999999}`, 0, false, false},
		{`{"type":"ack","seq":007}`, 0, false, false},
		{`{"type":"ack","seq":-1}`, 0, false, false},
		{`{"type":"ack","seq":}`, 0, false, false},
		{`{"type":"ack","seq":"1"}`, 0, false, false},
		{`{"type":"ack", "seq":7}`, 7, false, true},
		{`{"seq":7,"type":"ack"}`, 7, false, true},
	} {
		_, fast := decodeAck([]byte(tc.frame))
		v, err := DecodeDevice([]byte(tc.frame))
		if fast != tc.fast || (err == nil) != tc.ok {
			t.Errorf("%s: fast %v err %v; want fast %v ok %v", tc.frame, fast, err, tc.fast, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("%s: err %v is not ErrBadFrame", tc.frame, err)
			}
			continue
		}
		if a, ok := v.(*Ack); !ok || a.Seq != tc.seq || a.Type != TypeAck {
			t.Errorf("%s: decoded %#v", tc.frame, v)
		}
	}
}

// FuzzDecodeHello checks the hello fast path against the general decoder:
// a frame it decodes, the general way decodes to the same hello, and it
// is how Encode writes that hello.
func FuzzDecodeHello(f *testing.F) {
	for _, s := range helloFrames {
		f.Add([]byte(s.frame))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeHello(data)
		if !ok {
			return
		}
		var slow Hello
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path took %q, the general decoder refuses it: %v", data, err)
		}
		if slow != *fast || slow.Type != TypeHello {
			t.Fatalf("%q: fast path %+v, general decoder %+v", data, *fast, slow)
		}
		if enc, err := Encode(slow); err != nil || string(enc) != string(data) {
			t.Fatalf("%q is not how Encode writes %+v (%s)", data, slow, enc)
		}
	})
}

// helloFrames are hellos as devices send them and as they might, each
// with whether the fast path takes it and whether it is valid at all.
var helloFrames = []struct {
	frame string
	fast  bool // taken by the fast path
	ok    bool // decoded and valid
}{
	{`{"type":"hello","version":2,"last_seq":0}`, true, true},
	{`{"type":"hello","version":2,"last_seq":0,"power":"normal"}`, true, true},
	{`{"type":"hello","version":2,"id":"dev1","nonce":"` + nonceA + `","proof":"` + nonceB + `","last_seq":17,"power":"low","urgency":"high","heartbeat":240}`, true, true},
	{`{"type":"hello","version":2,"id":"dev1","nonce":"` + nonceA + `","proof":"` + nonceB + `","last_seq":18446744073709551615}`, true, true},
	{`{"type":"hello","version":2,"id":"dev1","nonce":"` + nonceA + `","proof":"` + nonceB + `","last_seq":18446744073709551616}`, false, false},
	{`{"type":"hello","version":1,"last_seq":0}`, true, false},                                // ErrVersion, after the same decoding
	{`{"type":"hello","version":2,"id":"dev1","last_seq":0}`, true, false},                    // an id without nonce and proof
	{`{"type":"hello","version":2,"last_seq":0,"power":"turbo"}`, true, false},                // no such power level
	{`{"type":"hello","version":2,"last_seq":0,"heartbeat":86401}`, true, false},              // past MaxHeartbeat
	{`{"type":"hello","version":2,"last_seq":0,"secret":"s"}`, false, false},                  // version 1's secret: the general way refuses it
	{`{"type":"hello","version":2,"last_seq":0,"heartbeat":0}`, false, true},                  // Encode leaves a zero out
	{`{"type":"hello","version":2,"id":"","last_seq":0}`, false, true},                        // and an empty string
	{`{"type":"hello","version":2,"last_seq":007}`, false, false},                             // no leading zeros in JSON
	{`{"type":"hello","version":2,"last_seq":-1}`, false, false},                              // nor a negative number
	{`{"type":"hello","version":2,"last_seq":1.5}`, false, false},                             // nor a fraction
	{`{"type":"hello", "version":2,"last_seq":0}`, false, true},                               // spaced
	{`{"version":2,"type":"hello","last_seq":0}`, false, true},                                // reordered
	{`{"type":"hello","version":2,"last_seq":0,"power":"\u006eormal"}`, false, true},          // escaped
	{`{"type":"hello","version":2,"last_seq":0,"power":"normal","power":"low"}`, false, true}, // repeated
	{`{"type":"hello","version":2,"last_seq":0}x`, false, false},
	{`{"type":"hello","version":2,"last_seq":0`, false, false},
	{`{"type":"hello","version":2}`, false, true}, // last_seq is always written, but not required
}

// Stand-ins for nonces and proofs: 43 base64url characters.
const (
	nonceA = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	nonceB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA"
)

func TestDecodeHello(t *testing.T) {
	for _, tc := range helloFrames {
		fast, took := decodeHello([]byte(tc.frame))
		v, err := DecodeDevice([]byte(tc.frame))
		if took != tc.fast || (err == nil) != tc.ok {
			t.Errorf("%s: fast %v err %v; want fast %v ok %v", tc.frame, took, err, tc.fast, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("%s: err %v is not ErrBadFrame", tc.frame, err)
			}
			continue
		}
		h, ok := v.(*Hello)
		if !ok || h.Type != TypeHello {
			t.Errorf("%s: decoded %#v", tc.frame, v)
			continue
		}
		var slow Hello
		if err := json.Unmarshal([]byte(tc.frame), &slow); err != nil || slow != *h {
			t.Errorf("%s: decoded %+v, the general decoder %+v (%v)", tc.frame, *h, slow, err)
		}
		if took && *fast != *h {
			t.Errorf("%s: fast path %+v, DecodeDevice %+v", tc.frame, *fast, *h)
		}
	}
}

// A hello that Encode writes goes the fast way, and what a device of
// this package sends comes back the same.
func TestDecodeHelloRoundTrip(t *testing.T) {
	for _, h := range []Hello{
		{Type: TypeHello, Version: Version},
		{Type: TypeHello, Version: Version, LastSeq: 3, Power: "critical", Urgency: "very-low"},
		{Type: TypeHello, Version: Version, ID: "Zm9vYmFy-_", Nonce: nonceA, Proof: nonceB, LastSeq: 1 << 40, Heartbeat: 1},
	} {
		b, err := Encode(h)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeHello(b)
		if !ok || *got != h {
			t.Errorf("%s: fast path %v, %+v; want %+v", b, ok, got, h)
		}
	}
}

// FuzzEncodeHandshake checks the challenge's and the welcome's encoders
// against json.Marshal, which Encode falls back to for what they refuse.
func FuzzEncodeHandshake(f *testing.F) {
	f.Add("challenge", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", 2, 60)
	f.Add("welcome", "dev-1_x", "secret", 60, 14400)
	f.Add("welcome", "<dev>", "", -1, 0)
	f.Add("w\"elcome", "d\\ev", "\u2028", 0, -14400)
	f.Add("welcome", "dév", "\x01", 1<<31, 1<<62)
	f.Fuzz(func(t *testing.T, typ, s1, s2 string, n1, n2 int) {
		for _, v := range []any{
			Challenge{Type: typ, Version: n1, Nonce: s1},
			Welcome{Type: typ, ID: s1, Secret: s2, Proof: s1, MinHeartbeat: n1, MaxIdle: n2},
			Welcome{Type: typ, ID: s2, Proof: s1, MinHeartbeat: n2, MaxIdle: n1},
		} {
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := Encode(v); err != nil || string(got) != string(want) {
				t.Fatalf("%+v: Encode %s (%v), json.Marshal %s", v, got, err, want)
			}
		}
	})
}
