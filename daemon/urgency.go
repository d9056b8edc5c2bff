package daemon

import (
	"context"

	"github.com/heraldpush/herald/mpns"
)

// minUrgency is the least urgent Web Push message the device takes at the
// power level given (mpns.MinUrgency): low battery takes only high, on
// power and Wi-Fi everything. The service holds the rest (docs/power.md).
func (d *Daemon) minUrgency(ctx context.Context, power string) string {
	onPower, onWiFi := true, true
	if d.cfg.Supply != nil {
		onPower, onWiFi = d.cfg.Supply()
	}
	return mpns.MinUrgency(power, onPower, onWiFi).String()
}

// MinUrgency reports the device's minimum urgency for the hello.
func (h *linkHandler) MinUrgency(ctx context.Context) string {
	d := h.d()
	power, err := d.power(ctx)
	if err != nil {
		d.log.Warn("reading the power level failed; taking every urgency", "err", err)
		return ""
	}
	return d.minUrgency(ctx, power)
}
