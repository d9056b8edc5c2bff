// Package clock lets every timer in Herald run on an injected clock, so tests
// can move time forward by hours without sleeping.
package clock

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Clock is the part of package time that Herald's timers use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the current time on C after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a stoppable one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
	// Reset changes the timer to fire after d.
	Reset(d time.Duration)
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Stop() bool            { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }

// Fake is a clock that only moves when Advance is called. Timers fire, in
// deadline order, as Advance passes their deadlines.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// waiters are woken whenever a timer is created or reset, so a test can
	// wait until the code under test has armed its timer before advancing.
	changed chan struct{}
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer creates a timer that fires when Advance reaches now+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, c: make(chan time.Time, 1), when: f.now.Add(d), active: true}
	f.timers = append(f.timers, t)
	f.notifyLocked()
	return t
}

// Advance moves the clock forward by d, firing every timer whose deadline
// is reached, each at its own deadline.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range f.timers {
			if t.active && !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		if next.when.After(f.now) {
			f.now = next.when
		}
		next.active = false
		select {
		case next.c <- f.now:
		default:
		}
	}
	f.now = end
	f.compactLocked()
	f.mu.Unlock()
}

// Set moves the clock to t (never backwards), firing due timers.
func (f *Fake) Set(t time.Time) {
	if d := t.Sub(f.Now()); d > 0 {
		f.Advance(d)
	}
}

// Pending returns the deadlines of the timers that have not fired yet, sorted.
func (f *Fake) Pending() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Time
	for _, t := range f.timers {
		if t.active {
			out = append(out, t.when)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// Changed returns a channel that is closed the next time a timer is created
// or reset.
func (f *Fake) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) compactLocked() {
	live := f.timers[:0]
	for _, t := range f.timers {
		if t.active {
			live = append(live, t)
		}
	}
	for i := len(live); i < len(f.timers); i++ {
		f.timers[i] = nil
	}
	f.timers = live
}

type fakeTimer struct {
	clock  *Fake
	c      chan time.Time
	when   time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	t.when = f.now.Add(d)
	if !t.active {
		t.active = true
		// A stopped timer may still be in the list until the next Advance
		// compacts it; add it only once.
		if !slices.Contains(f.timers, t) {
			f.timers = append(f.timers, t)
		}
	}
	f.notifyLocked()
}
