package defaults

import (
	"log/slog"
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct {
		in, want time.Duration
	}{
		{0, time.Second},
		{-time.Minute, time.Second},
		{time.Nanosecond, time.Nanosecond},
		{time.Hour, time.Hour},
	} {
		v := tc.in
		Positive(&v, time.Second)
		if v != tc.want {
			t.Errorf("Positive(%v) = %v, want %v", tc.in, v, tc.want)
		}
	}
	n := 0
	Positive(&n, 7)
	if n != 7 {
		t.Errorf("int: %d", n)
	}
}

func TestSet(t *testing.T) {
	var log *slog.Logger
	Set(&log, slog.Default())
	if log != slog.Default() {
		t.Error("a nil logger was not set")
	}
	mine := slog.New(slog.DiscardHandler)
	Set(&mine, slog.Default())
	if mine == slog.Default() {
		t.Error("a set logger was replaced")
	}
	type clock interface{ Now() time.Time }
	var c clock
	Set[clock](&c, realClock{})
	if _, ok := c.(realClock); !ok {
		t.Errorf("a nil interface was not set: %T", c)
	}
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
