package natsim

import (
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
)

// Driver steps a link's heartbeats on a fake clock through the NAT, for
// tests. Between heartbeats the link must have its next heartbeat armed;
// the service on the same clock may have timers of its own (the bound on
// what it wrote and the device has not acknowledged), which fire as the
// clock passes them.
type Driver struct {
	T       testing.TB
	Clock   *clock.Fake
	NAT     *NAT
	Link    *channel.Link
	Timeout time.Duration // the link's HeartbeatTimeout
}

// Beat is what one heartbeat did.
type Beat struct {
	Interval time.Duration // the idle time it tested
	Answered bool
	At       time.Time // when the ping went out
	Noticed  time.Time // for a dead link: when the link gave up on it
}

// wait polls cond: the link, the NAT and the service run on their own
// goroutines over real sockets.
func (d *Driver) wait(what string, cond func() bool) {
	d.T.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.T.Fatalf("timed out waiting for %s (pending timers %v, now %v, link %+v)", what, d.Clock.Pending(), d.Clock.Now(), d.Link.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Idle waits until the link is up with its heartbeat as its only timer,
// due one interval from now, and returns that deadline.
func (d *Driver) Idle() time.Time {
	d.T.Helper()
	return d.armed(true)
}

// Next waits until the link is up with its heartbeat as its only timer
// and returns when that heartbeat is due (the clock may have moved since
// the last traffic).
func (d *Driver) Next() time.Time {
	d.T.Helper()
	return d.armed(false)
}

// armed waits for the link to be up with one timer; strict: due exactly
// one interval from now (the link has just seen traffic).
func (d *Driver) armed(strict bool) time.Time {
	d.T.Helper()
	var due time.Time
	d.wait("link idle with one heartbeat timer", func() bool {
		st := d.Link.Stats()
		if !st.Connected || st.HeartbeatDue.IsZero() || !slices.ContainsFunc(d.Clock.Pending(), st.HeartbeatDue.Equal) {
			return false
		}
		due = st.HeartbeatDue
		full := d.Clock.Now().Add(st.Heartbeat)
		if strict {
			return due.Equal(full)
		}
		return due.After(d.Clock.Now()) && !due.After(full)
	})
	return due
}

// Beat advances to the next heartbeat and follows it through: answered,
// or unanswered and the link back up after its reconnect.
func (d *Driver) Beat() Beat {
	d.T.Helper()
	due := d.armed(false)
	before := d.Link.Stats()
	nat := d.NAT.Stats()
	d.Clock.Advance(due.Sub(d.Clock.Now()))
	b := Beat{Interval: before.Heartbeat, At: due}
	// The ping, not whatever else crossed the NAT meanwhile (the service
	// may write to a flow the NAT has dropped), decides the beat: wait
	// for the link to send it and for the NAT to pass or discard it.
	d.wait("the heartbeat's ping", func() bool { return d.Link.Stats().Pings > before.Pings })
	d.wait("the ping crossing the NAT", func() bool {
		st := d.NAT.Stats()
		return st.UpPackets+st.UpDiscarded > nat.UpPackets+nat.UpDiscarded
	})
	if d.NAT.Stats().UpDiscarded == nat.UpDiscarded {
		b.Answered = true
		d.wait("pong", func() bool { return d.Link.Stats().Pongs > before.Pongs })
		return b
	}
	// The ping vanished: the link must hold on until the timeout, then
	// give up at once.
	if d.Timeout > time.Second {
		d.Clock.Advance(d.Timeout - time.Second)
		if st := d.Link.Stats(); !st.Connected || st.DeadLinks != before.DeadLinks {
			d.T.Fatalf("link gave up before the heartbeat timeout: %+v", st)
		}
		d.Clock.Advance(time.Second)
	} else {
		d.Clock.Advance(d.Timeout)
	}
	b.Noticed = d.Clock.Now()
	var retry time.Time
	d.wait("link down and waiting to reconnect", func() bool {
		st := d.Link.Stats()
		retry = st.RetryAt
		return st.Reconnects > before.Reconnects && st.State == channel.StateWaiting && slices.ContainsFunc(d.Clock.Pending(), retry.Equal)
	})
	d.Clock.Advance(retry.Sub(d.Clock.Now()))
	return b
}
