package clock

import (
	"testing"
	"time"
)

func TestFakeFiresTimersInOrderAtTheirDeadlines(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	late := f.NewTimer(10 * time.Minute)
	early := f.NewTimer(time.Minute)
	stopped := f.NewTimer(2 * time.Minute)
	if !stopped.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}

	f.Advance(5 * time.Minute)
	select {
	case at := <-early.C():
		if !at.Equal(start.Add(time.Minute)) {
			t.Errorf("early fired at %v, want its deadline %v", at, start.Add(time.Minute))
		}
	default:
		t.Fatal("early timer did not fire")
	}
	select {
	case <-late.C():
		t.Fatal("late timer fired before its deadline")
	case <-stopped.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if got := f.Pending(); len(got) != 1 || !got[0].Equal(start.Add(10*time.Minute)) {
		t.Fatalf("pending = %v, want only the late timer", got)
	}

	late.Reset(time.Minute) // from now: fires at 6 min
	f.Advance(time.Minute)
	select {
	case at := <-late.C():
		if !at.Equal(start.Add(6 * time.Minute)) {
			t.Errorf("reset timer fired at %v", at)
		}
	default:
		t.Fatal("reset timer did not fire")
	}
	if !f.Now().Equal(start.Add(6 * time.Minute)) {
		t.Errorf("now = %v", f.Now())
	}
}

func TestFakeChangedSignalsNewTimers(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ch := f.Changed()
	f.NewTimer(time.Second)
	select {
	case <-ch:
	default:
		t.Fatal("Changed was not closed by NewTimer")
	}
}

func TestFakeStopThenResetIsPendingOnce(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tm := f.NewTimer(time.Minute)
	tm.Stop()
	tm.Reset(2 * time.Minute)
	if got := f.Pending(); len(got) != 1 {
		t.Fatalf("pending = %v, want one timer", got)
	}
}
