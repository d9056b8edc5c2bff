package server

import (
	"errors"
	"testing"

	"github.com/heraldpush/herald/wire"
)

// Whatever a browser (or anyone) sends, the parser answers with
// errBrowserFrame or a frame within every bound, and the session's
// decoder never acknowledges a message it did not write.
func FuzzParseBrowserFrame(f *testing.F) {
	f.Add([]byte(`{"messageType":"hello","broadcasts":{},"use_webpush":true}`))
	f.Add([]byte(`{"messageType":"hello","broadcasts":{},"use_webpush":true,"uaid":"LLajytD3tRX9wgu4GoxLm4vEkOChHpUGWcdOv6qg2NI"}`))
	f.Add([]byte(`{"channelID":"c3163698-e5d9-4875-8cdd-1e73b67f14b8","messageType":"register","key":"BD3hRw3pmB5BA1YvCr3rbCuiWLp-KefR_m1QxRVutzBwx2_AblxvFwZDe6RXL6hOPHNnSjGG48Lz9UfovVO1_5I="}`))
	f.Add([]byte(`{"messageType":"ack","updates":[{"channelID":"275737ca-e7ef-49f9-89f4-6ee7d756a35f","version":"2","code":100}]}`))
	f.Add([]byte(`{"messageType":"nack","version":"3","code":301}`))
	f.Add([]byte(`{"messageType":"broadcast_subscribe","broadcasts":{"remote-settings/monitor_changes":"\"0\""}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"messageType":"unregister","channelID":"275737ca-e7ef-49f9-89f4-6ee7d756a35f","code":200}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseBrowserFrame(data)
		if err != nil {
			if !errors.Is(err, errBrowserFrame) {
				t.Fatalf("error %v does not wrap errBrowserFrame", err)
			}
			return
		}
		switch fr.MessageType {
		case browserHello:
			if len(fr.UAID) > maxUAIDLength || !fr.UseWebPush {
				t.Fatalf("hello passed: %+v", fr)
			}
		case browserRegister, browserUnregister:
			if !validChannelUUID(fr.ChannelID) {
				t.Fatalf("channelID %q passed", fr.ChannelID)
			}
		case browserAck:
			if len(fr.Updates) == 0 || len(fr.Updates) > maxAckUpdates {
				t.Fatalf("%d updates passed", len(fr.Updates))
			}
		}
		var b browserLink
		b.wrote(2)
		b.wrote(3)
		v, err := b.decode(data)
		if err != nil {
			t.Fatalf("decode failed where parse did not: %v", err)
		}
		if a, ok := v.(*wire.Ack); ok && a.Seq != 2 && a.Seq != 3 {
			t.Fatalf("acknowledged up to %d; only 2 and 3 were written", a.Seq)
		}
	})
}
