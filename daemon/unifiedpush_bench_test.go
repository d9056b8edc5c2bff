package daemon_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/dbustest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// BenchmarkUnifiedPushMessage is one raw notification from the link to a
// Connector2 app's Message and its reply, one at a time, on a private bus:
// the apply, the outbox, the bus's word on who holds the app's name and as
// which user, the call and the ack.
func BenchmarkUnifiedPushMessage(b *testing.B) {
	bus := dbustest.SessionBus(b)
	svc := testenv.Service(b, "", server.ServeConfig{})
	d := testenv.StartDaemon(b, daemon.Config{Service: svc.URL(), UnifiedPushBus: bus})
	app := newConnector(b, bus, "org.example.Bench", 2)
	if res, reason := app.register2("org.example.Bench", "token-bench", ""); res != "REGISTRATION_SUCCEEDED" {
		b.Fatalf("Register = %s %s", res, reason)
	}
	app.next("NewEndpoint")
	chans, err := d.Client.Channels(context.Background(), "")
	if err != nil || len(chans) != 1 {
		b.Fatalf("channels %v %v", chans, err)
	}
	st, err := d.Client.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	h := daemon.LinkHandler(d.Daemon)
	seq := st.AppliedSeq
	body := []byte("bench")
	b.ResetTimer()
	for range b.N {
		seq++
		if err := h.Apply(context.Background(), []wire.Notification{{Seq: seq, ChannelID: chans[0].ChannelID, Kind: string(mpns.KindRaw), Body: body}}); err != nil {
			b.Fatal(err)
		}
		app.next("Message")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
}
