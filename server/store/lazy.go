package store

import (
	"context"
	"sync"
	"time"

	"github.com/heraldpush/herald/clock"
)

// Lazy holds what AckLater and TouchLater were given until a backend
// applies it: the highest ack and the latest last-seen time per device, so
// a device acknowledging many times between two flushes costs one write,
// and a flood of acks from one device holds one entry. Both backends keep
// it: SQLite hands what is waiting to its next group transaction, NATS
// applies it from Run.
type Lazy struct {
	mu      sync.Mutex
	acks    map[string]uint64
	touches map[string]int64 // Unix milliseconds
	kick    chan struct{}    // cap 1: the first entry since the last Take
}

// NewLazy returns an empty Lazy.
func NewLazy() *Lazy {
	return &Lazy{acks: map[string]uint64{}, touches: map[string]int64{}, kick: make(chan struct{}, 1)}
}

// Ack keeps seq as the device's ack unless a higher one is waiting. An
// ack above MaxSeq is dropped: it is no number a backend gave, and Ack
// reports it as ErrSeqRange.
func (l *Lazy) Ack(deviceID string, seq uint64) {
	if seq > MaxSeq {
		return
	}
	l.mu.Lock()
	first := l.emptyLocked()
	if seq > l.acks[deviceID] {
		l.acks[deviceID] = seq
	}
	l.mu.Unlock()
	l.kicked(first)
}

// Touch keeps seen as the device's last-seen unless a later one is
// waiting, so a lazy touch never moves last-seen back.
func (l *Lazy) Touch(deviceID string, seen time.Time) {
	ms := seen.UnixMilli()
	l.mu.Lock()
	first := l.emptyLocked()
	if ms > l.touches[deviceID] {
		l.touches[deviceID] = ms
	}
	l.mu.Unlock()
	l.kicked(first)
}

func (l *Lazy) emptyLocked() bool { return len(l.acks) == 0 && len(l.touches) == 0 }

func (l *Lazy) kicked(first bool) {
	if !first {
		return
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Kicked receives once after the first entry since the last Take: a
// backend that flushes with its own work starts its AckDelay timer then.
func (l *Lazy) Kicked() <-chan struct{} { return l.kick }

// Take returns what is waiting and empties it: acks as the highest number
// per device, touches as Unix milliseconds per device. Each map is nil
// when nothing of its kind waits, and the caller owns what it gets.
func (l *Lazy) Take() (acks map[string]uint64, touches map[string]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.acks) > 0 {
		acks, l.acks = l.acks, map[string]uint64{}
	}
	if len(l.touches) > 0 {
		touches, l.touches = l.touches, map[string]int64{}
	}
	return acks, touches
}

// Run applies what is waiting through flush, delay after the first entry
// since the last flush, until ctx ends; then once more, so that acks
// given before a shutdown are not lost with it (each spares a device a
// resend). clk is the clock the delay runs on (nil: the real one).
func (l *Lazy) Run(ctx context.Context, clk clock.Clock, delay time.Duration, flush func(acks map[string]uint64, touches map[string]int64)) error {
	if clk == nil {
		clk = clock.Real{}
	}
	final := func() {
		if acks, touches := l.Take(); acks != nil || touches != nil {
			flush(acks, touches)
		}
	}
	for {
		select {
		case <-l.kick:
		case <-ctx.Done():
			final()
			return nil
		}
		t := clk.NewTimer(delay)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			final()
			return nil
		}
		final()
	}
}

// Len counts the devices with an ack or a last-seen time waiting.
func (l *Lazy) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.acks)
	for id := range l.touches {
		if _, ok := l.acks[id]; !ok {
			n++
		}
	}
	return n
}
