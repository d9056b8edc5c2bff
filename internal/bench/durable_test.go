package bench

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/sqlitedb"
	"github.com/heraldpush/herald/wire"
)

// TestRunDurableFloor: a closed loop of a few hundred notifications to
// 20 devices through the durable floor arrives whole, each once, and
// every row it committed is deleted by an ack by the end of the drain;
// the table gives the service's ratio to it.
func TestRunDurableFloor(t *testing.T) {
	// A rate far above what is taken, over 3 ms: 300 notifications sent
	// as fast as the senders are answered.
	const rate, duration = 100_000, 3 * time.Millisecond
	total := int64(rate * duration.Seconds())
	res, err := Run(context.Background(), Config{Devices: 20, Rate: rate, Duration: duration, DurableFloor: true,
		DataDir: t.TempDir(), Sources: 4, Senders: 16, Drain: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := res.DurableFloor
	if d == nil || res.Floor == nil {
		t.Fatalf("durable floor %v, floor %v: want both", d, res.Floor)
	}
	if d.Sent != total || d.Accepted != d.Sent || d.Refused != 0 || d.Errors != 0 {
		t.Fatalf("durable floor: sent %d of %d, accepted %d (refused %d, errors %d)", d.Sent, total, d.Accepted, d.Refused, d.Errors)
	}
	if d.Delivered != d.Sent || d.Lost != 0 || d.Duplicated != 0 {
		t.Fatalf("durable floor: delivered %d of %d, lost %d, dup %d", d.Delivered, d.Sent, d.Lost, d.Duplicated)
	}
	if d.RowsLeft == nil || *d.RowsLeft != 0 {
		t.Fatalf("durable floor: rows left %v, want 0 once every ack is applied", d.RowsLeft)
	}
	// Every notification was inserted once; acks cover one notify frame
	// each, and the committer counts only what reached it.
	if c := d.DurableCommits; c == nil || c.Inserts != d.Sent || c.Acks < 1 || c.Acks > d.Sent || c.Commits < 1 || c.Commits > c.Inserts+c.Acks {
		t.Fatalf("durable floor commits: %+v for %d sent", c, d.Sent)
	}
	var out strings.Builder
	if err := WriteTable(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`× the durable floor's`, `(?m)^durable floor rows left +0 `} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("the table has no %s:\n%s", want, out.String())
		}
	}
}

// TestDurableFloorCommitsFirst: by the time the durable floor answers a
// POST, its row is committed (another connection sees it), the notify
// frame follows with the device's next number, and the device's ack of
// it deletes the row.
func TestDurableFloorCommitsFirst(t *testing.T) {
	dir := t.TempDir()
	f, err := startFloor(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	ws, id := enrolRaw(t, f)
	defer ws.Close()

	resp, err := http.Post(f.url+floorPath+id, "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: status %d", resp.StatusCode)
	}
	// The device has not read, so has not acked: the row must be there.
	rd, err := sqlitedb.OpenReader(context.Background(), f.durable.file, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var channel, body string
	if err := rd.QueryRow(`SELECT channel, body FROM notifications WHERE device = ? AND seq = 1`, id).Scan(&channel, &body); err != nil {
		t.Fatalf("the answered notification's row, from another connection: %v", err)
	}
	if channel != id || body != "hello" {
		t.Fatalf("row: channel %q body %q, want %q and hello", channel, body, id)
	}

	n := readNotify(t, ws)
	if len(n.Notifications) != 1 || n.Notifications[0].Seq != 1 || string(n.Notifications[0].Body) != "hello" {
		t.Fatalf("notify frame: %+v, want seq 1 with the body", n.Notifications)
	}
	writeFrame(t, ws, wire.Ack{Type: wire.TypeAck, Seq: 1})
	left, err := f.durable.waitEmpty(context.Background(), 10*time.Second)
	if err != nil || left != 0 {
		t.Fatalf("after the ack: %d rows left (%v), want 0", left, err)
	}
}

// enrolRaw connects to the floor as a new device by hand, so that the
// test decides when it reads and acks, and returns its id.
func enrolRaw(t *testing.T, f *floor) (*websocket.Conn, string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/device", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readFrame(t, ws).(*wire.Challenge); !ok {
		t.Fatal("first frame is not a challenge")
	}
	writeFrame(t, ws, wire.Hello{Type: wire.TypeHello, Version: wire.Version})
	w, ok := readFrame(t, ws).(*wire.Welcome)
	if !ok || w.ID == "" {
		t.Fatalf("no welcome with an id: %+v", w)
	}
	// The floor knows the device once it has written the welcome and
	// taken the connection as the device's, which a metrics scrape
	// cannot order after; wait for it to count one device.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := ScrapeService(context.Background(), f.url)
		if err != nil {
			t.Fatal(err)
		}
		if m[MetricConnected] == 1 {
			return ws, w.ID
		}
		if time.Now().After(deadline) {
			t.Fatal("the floor never counted the device")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFrame(t *testing.T, ws *websocket.Conn) any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	v, err := wire.DecodeService(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readNotify(t *testing.T, ws *websocket.Conn) *wire.Notify {
	t.Helper()
	n, ok := readFrame(t, ws).(*wire.Notify)
	if !ok {
		t.Fatal("frame is not a notify")
	}
	return n
}

func writeFrame(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	b, err := wire.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
}
