package bench

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRun drives a small fleet against an in-process service over real
// loopback sockets and checks that every accepted notification arrived
// exactly once.
func TestRun(t *testing.T) {
	res, err := Run(context.Background(), Config{Devices: 20, Rate: 200, Duration: time.Second,
		DataDir: t.TempDir(), Sources: 4, Senders: 8, Drain: 15 * time.Second,
		CPUPIDs: []int{os.Getpid()}, Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The service is in this process: its CPU over the send phase is
	// this process's.
	if len(res.CPU) != 1 || res.CPU[0].PID != os.Getpid() || res.CPU[0].Name == "" || res.CPU[0].Secs <= 0 ||
		res.CPUPerDeliveredUs <= 0 {
		t.Fatalf("CPU of the given processes: %+v, %.0f µs a notification", res.CPU, res.CPUPerDeliveredUs)
	}
	if res.Sent != 200 {
		t.Fatalf("sent %d, want 200", res.Sent)
	}
	if res.Accepted != res.Sent || res.Refused != 0 || res.Errors != 0 {
		t.Fatalf("accepted %d of %d (refused %d, errors %d)", res.Accepted, res.Sent, res.Refused, res.Errors)
	}
	if res.Delivered != res.Accepted || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("delivered %d of %d accepted, lost %d, duplicated %d", res.Delivered, res.Accepted, res.Lost, res.Duplicated)
	}
	if res.LatencyMs.Max <= 0 || res.LatencyMs.P50 > res.LatencyMs.P99 || res.LatencyMs.P99 > res.LatencyMs.Max {
		t.Fatalf("latency figures out of order: %+v", res.LatencyMs)
	}
	if res.Idle.RSSKiB <= 0 || res.After.CPUSecs <= 0 {
		t.Fatalf("no resource samples: idle %+v after %+v", res.Idle, res.After)
	}
}

// TestRunBrowsers does the same with browsers speaking Firefox's push
// protocol, sent Web Push messages.
func TestRunBrowsers(t *testing.T) {
	res, err := Run(context.Background(), Config{Devices: 20, Rate: 200, Duration: time.Second, Browsers: true,
		DataDir: t.TempDir(), Sources: 4, Senders: 8, Drain: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 200 || res.Accepted != res.Sent || res.Refused != 0 || res.Errors != 0 {
		t.Fatalf("sent %d, accepted %d (refused %d, errors %d)", res.Sent, res.Accepted, res.Refused, res.Errors)
	}
	if res.Delivered != res.Accepted || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("delivered %d of %d accepted, lost %d, duplicated %d", res.Delivered, res.Accepted, res.Lost, res.Duplicated)
	}
	if _, err := Run(context.Background(), Config{Devices: 1, Browsers: true, Reconnect: true}); err == nil {
		t.Fatal("browsers with reconnect accepted")
	}
}

// TestRunReconnect drops and reconnects the whole fleet before sending:
// every device is welcomed again as itself (not enrolled anew, or its
// channel would be gone and the notifications lost), and the hellos are
// timed.
func TestRunReconnect(t *testing.T) {
	res, err := Run(context.Background(), Config{Devices: 20, Rate: 100, Duration: time.Second, Reconnect: true,
		DataDir: t.TempDir(), Sources: 4, Senders: 8, Drain: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReconnectS <= 0 || res.HellosPerS <= 0 {
		t.Fatalf("reconnect not timed: %v s, %v hellos/s", res.ReconnectS, res.HellosPerS)
	}
	if res.Accepted != res.Sent || res.Delivered != res.Accepted || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("after reconnecting: sent %d accepted %d delivered %d lost %d dup %d",
			res.Sent, res.Accepted, res.Delivered, res.Lost, res.Duplicated)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url     string
		ok      bool
		loopErr bool
	}{
		{"http://127.0.0.1:8790", true, false},
		{"http://127.0.0.9:8790/", true, false},
		{"http://localhost:8790", true, false},
		{"http://[::1]:8790", true, false},
		{"http://10.0.0.1:8790", false, true},
		{"http://example.com", false, true},
		{"https://127.0.0.1:8790", false, false},
		{"127.0.0.1:8790", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		err := CheckLoopback(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if tt.loopErr != errors.Is(err, ErrNotLoopback) {
			t.Errorf("CheckLoopback(%q) = %v, want ErrNotLoopback=%v", tt.url, err, tt.loopErr)
		}
	}
}

func TestRunRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no devices", Config{}},
		{"negative rate", Config{Devices: 1, Rate: -1}},
		{"remote service", Config{Devices: 1, Service: "http://192.0.2.1:8790"}},
		{"too many sources", Config{Devices: 1, Sources: 251}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.cfg); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestTargetOtherNode(t *testing.T) {
	for _, c := range []struct {
		nodes []string
		id    int
		want  string
	}{
		{nil, 3, "http://127.0.0.1:8790/throttledthirdparty/01.00/tok"},
		{[]string{"http://127.0.0.1:8791"}, 3, "http://127.0.0.1:8791/throttledthirdparty/01.00/tok"},
		{[]string{"http://127.0.0.1:8791/", "http://127.0.0.1:8792"}, 3, "http://127.0.0.1:8792/throttledthirdparty/01.00/tok"},
		{[]string{"http://127.0.0.1:8791/", "http://127.0.0.1:8792"}, 4, "http://127.0.0.1:8791/throttledthirdparty/01.00/tok"},
	} {
		if got := target(c.nodes, "http://127.0.0.1:8790/throttledthirdparty/01.00/tok", c.id); got != c.want {
			t.Errorf("target(%v, %d) = %s, want %s", c.nodes, c.id, got, c.want)
		}
	}
}

// TestRunFloor: the floor is driven as the service is, reconnect
// included (a device coming back is known by its proof alone, and its
// numbering goes on from what it applied), and its figures come with the
// service's.
func TestRunFloor(t *testing.T) {
	// The service in this process: its CPU is the test's, and the floor,
	// in this process too, reports none of it.
	res, err := Run(context.Background(), Config{Devices: 20, Rate: 100, Duration: time.Second, Reconnect: true, Floor: true,
		DataDir: t.TempDir(), Sources: 4, Senders: 8, Drain: 15 * time.Second, CPUPIDs: []int{os.Getpid()}, Settle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Floor
	if f == nil {
		t.Fatal("no floor figures")
	}
	if len(f.CPU) != 0 || len(res.CPU) != 1 {
		t.Fatalf("CPU sampled for the floor %v, for the service %v; want none, one", f.CPU, res.CPU)
	}
	if f.HellosPerS <= 0 || f.Sent != 100 {
		t.Fatalf("floor: %v hellos/s, %d sent", f.HellosPerS, f.Sent)
	}
	if f.Accepted != f.Sent || f.Delivered != f.Accepted || f.Lost != 0 || f.Duplicated != 0 {
		t.Fatalf("floor: sent %d accepted %d delivered %d lost %d dup %d", f.Sent, f.Accepted, f.Delivered, f.Lost, f.Duplicated)
	}
	if res.Accepted != res.Sent || res.Delivered != res.Accepted {
		t.Fatalf("service after the floor: sent %d accepted %d delivered %d", res.Sent, res.Accepted, res.Delivered)
	}
	var out strings.Builder
	if err := WriteTable(&out, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "× the floor's") {
		t.Fatalf("the table gives no ratio to the floor:\n%s", out.String())
	}
}

// TestFloorRefusesPost: a POST to the floor for no connected device, or
// with an oversize body, is answered, not delivered or crashed on.
func TestFloorRefusesPost(t *testing.T) {
	f, err := startFloor("")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{"unknown device", "x", http.StatusPreconditionFailed},
		{"oversize", strings.Repeat("x", maxFloorBody+1), http.StatusRequestEntityTooLarge},
	} {
		resp, err := http.Post(f.url+floorPath+"nobody", "text/plain", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
