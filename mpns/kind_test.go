package mpns

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
)

// Every kind's Spec agrees with the parsers: its target and class select
// it, its class comes back from ParseClass, and another kind's class is a
// mismatch.
func TestKindSpecs(t *testing.T) {
	seenBase := map[int]Kind{}
	for _, s := range Kinds() {
		if !s.MPNS() {
			continue
		}
		if other, dup := seenBase[s.ClassBase]; dup {
			t.Fatalf("%s and %s share class %d", s.Kind, other, s.ClassBase)
		}
		seenBase[s.ClassBase] = s.Kind
		got, ok := s.Kind.Spec()
		if !ok || got.Kind != s.Kind || !s.Kind.Valid() {
			t.Fatalf("%s: Spec() = %+v, %v", s.Kind, got, ok)
		}
		for _, target := range s.Targets {
			if k, ok := KindForTarget(" " + target + " "); !ok || k != s.Kind {
				t.Errorf("target %q selects %q, want %s", target, k, s.Kind)
			}
		}
		for _, d := range []Delay{Immediate, Within450s, Within900s} {
			class := ClassFor(s.Kind, d)
			k, gd, err := ParseClass(itoa(class))
			if err != nil || k != s.Kind || gd != d {
				t.Errorf("%s/%d: class %d parses as %s/%d, %v", s.Kind, d, class, k, gd, err)
			}
		}
		m := s.Sample()
		if m.Kind() != s.Kind {
			t.Errorf("%s: the sample is a %s", s.Kind, m.Kind())
		}
		h := http.Header{HeaderNotificationClass: {itoa(s.ClassBase)}}
		if s.Target() != "" {
			h.Set(HeaderTarget, s.Target())
		}
		if n, err := ParseRequest(h, m.Payload()); err != nil || n.Kind != s.Kind {
			t.Errorf("%s: the sample parses as %+v, %v", s.Kind, n, err)
		}
		if (s.Root == "") != (s.parse == nil) {
			t.Errorf("%s: a kind with a root element needs a parser, and only then", s.Kind)
		}
	}
	if Kind("badge").Valid() || ClassFor("badge", Immediate) != 0 {
		t.Error("an unknown kind is valid")
	}
	if _, ok := KindForTarget("badge"); ok {
		t.Error("an unknown target selects a kind")
	}
	for _, s := range Kinds() {
		for _, o := range Kinds() {
			if s.Kind == o.Kind || !s.MPNS() || !o.MPNS() {
				continue
			}
			h := http.Header{HeaderNotificationClass: {itoa(o.ClassBase)}}
			if s.Target() != "" {
				h.Set(HeaderTarget, s.Target())
			}
			if _, err := ParseRequest(h, []byte("x")); !errors.Is(err, ErrTargetMismatch) {
				t.Errorf("target of %s with class of %s: %v", s.Kind, o.Kind, err)
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A kind that arrives by Web Push has no class and no target: no MPNS
// request selects it, and the MPNS client refuses to send it.
func TestWebPushKindIsNotMPNS(t *testing.T) {
	s, ok := KindWebPush.Spec()
	if !ok || s.MPNS() || s.Target() != "" {
		t.Fatalf("webpush spec = %+v, %v", s, ok)
	}
	if c := ClassFor(KindWebPush, Immediate); c != 0 {
		t.Fatalf("webpush has class %d", c)
	}
	if k, _, err := ParseClass("0"); err == nil {
		t.Fatalf("class 0 selects %s", k)
	}
	for _, target := range []string{"", "webpush", "raw", "toast", "token"} {
		if k, _ := KindForTarget(target); k == KindWebPush {
			t.Fatalf("target %q selects webpush", target)
		}
	}
	if _, err := NewRequest(t.Context(), "http://127.0.0.1/x", WebPush("x"), SendOptions{}); !errors.Is(err, ErrBadClass) {
		t.Fatalf("the MPNS client built a webpush request: %v", err)
	}
	if got := KindNames(); got != "toast, tile or raw" {
		t.Fatalf("KindNames() = %q", got)
	}
}
