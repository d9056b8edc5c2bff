package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
)

// The daemon reports its minimum urgency with its power level: on low
// battery the service holds a low-urgency message while an MPNS one goes
// through; back on power and Wi-Fi, the held one is delivered and
// acknowledged, and its message resource says so.
func TestUrgencyFollowsTheDaemonsPower(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	var onPower atomic.Bool
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(),
		Supply: func() (bool, bool) { return onPower.Load(), onPower.Load() }})
	ctx := ctxFor(t, 30*time.Second)
	ch, err := d.Client.Open(ctx, "chat", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetPower(ctx, "low"); err != nil {
		t.Fatal(err)
	}
	svcCh, err := svc.Store.ChannelByToken(ctx, ch.URI[strings.LastIndex(ch.URI, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	// The service holds by what the device last reported: wait until it
	// has the low power level (stored after the minimum urgency is set).
	testenv.Eventually(t, 10*time.Second, "the service told of low power", func() bool {
		dev, err := svc.Store.Device(ctx, svcCh.DeviceID)
		return err == nil && dev.Power == "low"
	})
	// As the Web Push front end stores an Urgency: low message.
	low, err := svc.Store.Enqueue(ctx, store.Queued{DeviceID: svcCh.DeviceID, ChannelID: svcCh.ID, Kind: string(mpns.KindRaw),
		MessageID: "advert", Body: []byte("sale"), AcceptedAt: time.Now(), DueAt: time.Now(), Urgency: int(mpns.UrgencyLow)},
		store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, ch.URI, mpnsRequest{messageID: "call", body: []byte("ring")})
	testenv.Eventually(t, 10*time.Second, "the call acknowledged, the advert held", func() bool {
		qs, err := svc.Store.Pending(ctx, svcCh.DeviceID, 0)
		return err == nil && len(qs) == 1 && qs[0].MessageID == "advert" && qs[0].Seq > low.Seq
	})

	onPower.Store(true)
	if err := d.SetPower(ctx, "normal"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the advert delivered and acknowledged", func() bool {
		qs, err := svc.Store.Pending(ctx, svcCh.DeviceID, 0)
		return err == nil && len(qs) == 0
	})
	testenv.Eventually(t, 10*time.Second, "the advert's status says delivered", func() bool {
		resp, err := http.Get(server.MessageURI(ch.URI, "advert"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		st, err := svc.Store.MessageStatus(context.Background(), svcCh.DeviceID, svcCh.ID, "advert")
		return resp.StatusCode == http.StatusOK && err == nil && st.State == store.MessageDelivered
	})
}
