package channel

import (
	"context"

	"github.com/heraldpush/herald/wire"
)

// UrgencyReporter is a Handler that also reports the device's minimum
// urgency (wire.State.Urgency), which the hello then carries. A handler
// without it takes every urgency.
type UrgencyReporter interface {
	MinUrgency(ctx context.Context) string
}

func (l *Link) minUrgency(ctx context.Context) string {
	if u, ok := l.cfg.Handler.(UrgencyReporter); ok {
		return u.MinUrgency(ctx)
	}
	return ""
}

// SetState reports the device's power level and minimum urgency.
func (l *Link) SetState(ctx context.Context, power, urgency string) error {
	return l.simple(ctx, func(req uint64) any {
		return wire.State{Type: wire.TypeState, ReqID: req, Power: power, Urgency: urgency}
	})
}
