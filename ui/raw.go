package ui

import (
	"context"

	"github.com/heraldpush/herald/storage"
)

// rawPanel is the raw notifications panel: each app's newest raw
// notifications from the phone's database, so the page shows what the
// phone received before it was opened, and after a restart.
func rawPanel(ctx context.Context, store *storage.DeviceStore) (map[string][]RawEntry, error) {
	recs, err := store.RawLog(ctx, "")
	if err != nil {
		return nil, err
	}
	out := map[string][]RawEntry{}
	for _, r := range recs {
		out[r.App] = append(out[r.App], RawEntry{At: r.ReceivedAt, SentAt: r.SentAt, MessageID: r.MessageID, Body: string(r.Body),
			Delivered: r.Outcome == storage.RawToApp, Outcome: r.Outcome})
	}
	return out, nil
}
