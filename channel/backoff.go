package channel

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential growth with full jitter
// (a random delay between zero and the current ceiling), so that devices
// which lost the service together do not come back together.
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a float in [0,1); nil uses math/rand/v2.
	Rand    func() float64
	attempt int
}

// Next returns the delay before the next attempt and raises the ceiling.
func (b *Backoff) Next() time.Duration {
	ceiling := b.Min << min(b.attempt, 30)
	if ceiling > b.Max || ceiling <= 0 {
		ceiling = b.Max
	}
	b.attempt++
	return b.jitter(ceiling)
}

// Again returns a delay under the ceiling of the last Next, without
// raising it (under Min before any Next).
func (b *Backoff) Again() time.Duration {
	ceiling := b.Min << min(max(b.attempt-1, 0), 30)
	if ceiling > b.Max || ceiling <= 0 {
		ceiling = b.Max
	}
	return b.jitter(ceiling)
}

func (b *Backoff) jitter(ceiling time.Duration) time.Duration {
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return time.Duration(r() * float64(ceiling))
}

// Reset starts over after a healthy connection.
func (b *Backoff) Reset() { b.attempt = 0 }
