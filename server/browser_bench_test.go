package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
)

// dialQuietBrowser connects a browser with small buffers, says hello and
// subscribes once, and returns the connection and the pushEndpoint.
func dialQuietBrowser(b *testing.B, ts *testService, i int) (*websocket.Conn, string) {
	b.Helper()
	dialer := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	conn, _, err := dialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+server.BrowserPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	tb := &testBrowser{t: b, ts: ts, conn: conn}
	tb.send(browserMsg{MessageType: "hello", UseWebPush: true})
	if r := tb.next(); r.Status != 200 {
		b.Fatalf("hello answered %+v", r)
	}
	var id [16]byte
	binary.BigEndian.PutUint64(id[8:], uint64(i))
	uuid := strings.Join([]string{hex(id[0:4]), hex(id[4:6]), hex(id[6:8]), hex(id[8:10]), hex(id[10:16])}, "-")
	ep := tb.subscribe(uuid, "")
	conn.SetReadDeadline(time.Time{}) // the browser now waits as long as it takes
	return conn, ep
}

func hex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// BenchmarkIdleBrowsers measures what a connected idle browser costs the
// service, as BenchmarkIdleDevices does for Herald devices: goroutine
// stacks and live heap per browser once each has said hello, subscribed
// and gone quiet (the heap figure includes about 1.5 KiB per browser of
// the test's own connection state).
//
//	go test -run '^$' -bench IdleBrowsers -benchtime 2000x ./server
func BenchmarkIdleBrowsers(b *testing.B) {
	ts := startService(b, server.Config{})
	before := settledMemStats()
	for i := 0; i < b.N; i++ {
		dialQuietBrowser(b, ts, i)
	}
	after := settledMemStats()
	n := float64(b.N)
	b.ReportMetric(float64(after.stack-before.stack)/n, "stack_B/browser")
	b.ReportMetric(float64(after.heap-before.heap)/n, "heap_B/browser")
	b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/browser")
}

// BenchmarkBrowserDelivery holds browsers connected (HERALD_BENCH_BROWSERS,
// 1,000 by default) and posts b.N Web Push messages to their endpoints
// round-robin from 32 concurrent senders over loopback; each browser acks
// every message as Firefox does. It reports the latency from the start of
// the POST to the notification's arrival at the browser, p50 and p99.
//
//	go test -run '^$' -bench BrowserDelivery -benchtime 20000x ./server
func BenchmarkBrowserDelivery(b *testing.B) {
	ts := startService(b, server.Config{Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1, MaxInFlight: 1 << 16}})
	n := benchBrowsers()
	endpoints := make([]string, n)
	sent := make([]atomic.Int64, b.N) // unix nanoseconds at the POST's start
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	var got sync.WaitGroup
	got.Add(b.N)
	var readers sync.WaitGroup
	for i := range n {
		conn, ep := dialQuietBrowser(b, ts, i)
		endpoints[i] = ep
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					return
				}
				var m browserMsg
				if json.Unmarshal(data, &m) != nil || m.MessageType != "notification" {
					continue
				}
				now := time.Now()
				body, _ := decodeB64URL(m.Data)
				if len(body) < 8 {
					continue
				}
				k := binary.BigEndian.Uint64(body)
				mu.Lock()
				lat = append(lat, now.Sub(time.Unix(0, sent[k].Load())))
				mu.Unlock()
				ack, _ := json.Marshal(browserMsg{MessageType: "ack", Updates: []browserUpdate{{ChannelID: m.ChannelID, Version: m.Version, Code: 100}}})
				conn.WriteMessage(websocket.TextMessage, ack)
				got.Done()
			}
		}()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next atomic.Int64
	var senders sync.WaitGroup
	b.ResetTimer()
	for range 32 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			body := make([]byte, 256)
			for {
				k := next.Add(1) - 1
				if k >= int64(b.N) {
					return
				}
				binary.BigEndian.PutUint64(body, uint64(k))
				req, _ := http.NewRequest(http.MethodPost, endpoints[int(k)%n], bytes.NewReader(body))
				req.Header.Set("TTL", "3600")
				req.Header.Set("Content-Encoding", "aes128gcm")
				sent[k].Store(time.Now().UnixNano())
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					b.Errorf("post %d: %d", k, res.StatusCode)
					return
				}
			}
		}()
	}
	senders.Wait()
	all := make(chan struct{})
	go func() {
		got.Wait()
		close(all)
	}()
	select {
	case <-all:
	case <-time.After(2 * time.Minute): // a failsafe against a hang, not a measure
		b.Fatal("not every message arrived within 2 minutes")
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(float64(n), "browsers")
}

// benchBrowsers is how many browsers BenchmarkBrowserDelivery holds.
func benchBrowsers() int {
	if n, err := strconv.Atoi(os.Getenv("HERALD_BENCH_BROWSERS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

func decodeB64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
