package mpns_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/heraldpush/herald/mpns"
)

func ExampleClient_Send() {
	// A stand-in for heraldsvc's endpoint that takes every valid request.
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := mpns.ParseRequest(r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set(mpns.HeaderNotificationStatus, mpns.StatusReceived)
		w.Header().Set(mpns.HeaderSubscriptionStatus, mpns.SubscriptionActive)
		w.Header().Set(mpns.HeaderDeviceConnectionStatus, mpns.DeviceConnected)
	}))
	defer svc.Close()
	uri := svc.URL + "/throttledthirdparty/01.00/AbC"
	ctx := context.Background()

	var c mpns.Client
	res, err := c.Send(ctx, uri, &mpns.Toast{Text1: "Mail", Text2: "2 new", Param: "/Inbox.xaml?id=7"}, mpns.SendOptions{})
	if err != nil {
		fmt.Println("not sent:", err)
		return
	}
	fmt.Println(res.Status, res.Notification, res.Subscription, res.Device, res.Received())

	tile := &mpns.Tile{Template: mpns.TemplateFlip, Fields: []mpns.Field{
		{Name: "Title", Value: "Mail"}, {Name: "Count", Value: "2"}, {Name: "BackContent", Clear: true}}}
	res, _ = c.Send(ctx, uri, tile, mpns.SendOptions{Delay: mpns.Within450s})
	fmt.Println(res.Notification)

	res, _ = c.Send(ctx, uri, mpns.Raw(`{"sync":true}`), mpns.SendOptions{MessageID: "sync-42"})
	fmt.Println(res.Notification, res.MessageID)

	res, _ = c.Send(ctx, uri, mpns.Raw(""), mpns.SendOptions{})
	fmt.Println(res.Status, res.Error)
	// Output:
	// 200 Received Active Connected true
	// Received
	// Received sync-42
	// 400 mpns: raw notification has an empty body
}
