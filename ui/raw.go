package ui

import (
	"context"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
)

// rawPanel is the raw notifications panel: each app's newest raw
// notifications from the phone's database, so the page shows what the
// phone received before it was opened, and after a restart.
func rawPanel(ctx context.Context, d *daemon.Daemon) (map[string][]RawEntry, error) {
	recs, err := d.RawLog(ctx, "")
	if err != nil {
		return nil, err
	}
	out := map[string][]RawEntry{}
	for _, r := range recs {
		out[r.App] = append(out[r.App], RawEntry{At: r.ReceivedAt, SentAt: r.SentAt, MessageID: r.MessageID, Body: string(r.Body),
			Delivered: r.Outcome == app.RawToApp, Outcome: r.Outcome})
	}
	return out, nil
}
