package channel

import "time"

// Wakeups counts the link's own outbound packets over the last hour: each
// one wakes a phone's radio, so together they are the link's power cost.
type Wakeups struct {
	Heartbeats int `json:"heartbeats"`
	Reconnects int `json:"reconnects"` // dial attempts
	Acks       int `json:"acks"`
}

// Total is the sum of the three.
func (w Wakeups) Total() int { return w.Heartbeats + w.Reconnects + w.Acks }

type wakeKind int

const (
	wakeHeartbeat wakeKind = iota
	wakeReconnect
	wakeAck
)

// wakeLog keeps per-minute counts for the last hour, on the link's clock,
// so a status shows a sliding hour without keeping every timestamp.
type wakeLog struct {
	buckets [60]struct {
		minute int64 // minutes since the epoch this bucket counts
		w      Wakeups
	}
}

func (l *wakeLog) add(now time.Time, k wakeKind) {
	m := now.Unix() / 60
	b := &l.buckets[m%60]
	if b.minute != m {
		b.minute, b.w = m, Wakeups{}
	}
	switch k {
	case wakeHeartbeat:
		b.w.Heartbeats++
	case wakeReconnect:
		b.w.Reconnects++
	case wakeAck:
		b.w.Acks++
	}
}

// lastHour sums the buckets of the 60 minutes up to now.
func (l *wakeLog) lastHour(now time.Time) Wakeups {
	m := now.Unix() / 60
	var sum Wakeups
	for _, b := range l.buckets {
		if b.minute > m-60 && b.minute <= m {
			sum.Heartbeats += b.w.Heartbeats
			sum.Reconnects += b.w.Reconnects
			sum.Acks += b.w.Acks
		}
	}
	return sum
}
