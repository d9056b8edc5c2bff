package natsstore_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/server/store/natsstore"
)

// FuzzDecode feeds the queue message decoder any headers: a stream shared
// with other writers may hold anything on its subjects, and a message
// that does not decode is an error, never a panic or a half-read
// notification.
func FuzzDecode(f *testing.F) {
	f.Add(uint64(7), "dev", "ch", "toast", "2", "msg", "6b", "1772366400000", "1772366400000", "", []byte("<toast/>"))
	f.Add(uint64(1), "", "", "", "x", "", "zz", "-1", "9223372036854775807", "nope", []byte{})
	f.Add(uint64(1<<63), "d\r\nX: y", "c", "raw", "99999999999999999999", "", "", "", "", "3", []byte{0, 1})
	f.Fuzz(func(t *testing.T, seq uint64, dev, ch, kind, class, msg, tile, acc, due, merged string, body []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{"Herald-Device": dev, "Herald-Channel": ch, "Herald-Kind": kind, "Herald-Class": class,
			"Herald-Message-Id": msg, "Herald-Tile-Key": tile, "Herald-Accepted": acc, "Herald-Due": due, "Herald-Merged": merged} {
			if v != "" {
				h.Set(k, v)
			}
		}
		q, err := natsstore.Decode(seq, h, body)
		if err != nil {
			return
		}
		if q.Seq != seq || q.DeviceID != dev || q.DeviceID == "" || !bytes.Equal(q.Body, body) {
			t.Fatalf("decoded %+v from seq %d device %q", q, seq, dev)
		}
		if q.AcceptedAt.Equal(time.Time{}) {
			t.Fatal("no accepted time")
		}
	})
}
