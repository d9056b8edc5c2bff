package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/natstest"
)

// TestJetStreamFloor runs the floor on an in-process three-server
// cluster: every message published is delivered once and removed, the
// stream is empty before it is deleted, and the CPU of the pid given (the
// servers run in this process) is reported per message.
func TestJetStreamFloor(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	// 300 messages at 300/s over 10 subjects: paced, so that a loaded
	// machine still sends them all before the pacing's cut-off (a second
	// after the duration).
	cfg := Config{Devices: 10, Senders: 8, Rate: 300, Duration: time.Second,
		Drain: 20 * time.Second, Settle: 10 * time.Millisecond, CPUPIDs: []int{os.Getpid()}}
	res, err := RunJetStreamFloor(context.Background(), cfg, JetStreamFloor{URLs: c.URLs(), Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	counts := []struct {
		name      string
		got, want int64
	}{
		{"sent", res.Sent, 300},
		{"published", res.Accepted, 300},
		{"refused", res.Refused, 0},
		{"errors", res.Errors, 0},
		{"delivered", res.Delivered, 300},
		{"removed", res.Removed, 300},
		{"lost", res.Lost, 0},
		{"duplicated", res.Duplicated, 0},
		{"left in the stream", int64(res.LeftInStream), 0},
	}
	for _, n := range counts {
		if n.got != n.want {
			t.Errorf("%s = %d, want %d", n.name, n.got, n.want)
		}
	}
	if len(res.CPU) != 1 || res.CPU[0].PID != os.Getpid() || res.CPUPerDeliveredUs <= 0 {
		t.Errorf("CPU %+v, %v µs per delivered: want this process's, above 0", res.CPU, res.CPUPerDeliveredUs)
	}
	if res.LatencyMs.P50 <= 0 || res.LatencyMs.P99 < res.LatencyMs.P50 {
		t.Errorf("latency p50 %v, p99 %v ms: want 0 < p50 <= p99", res.LatencyMs.P50, res.LatencyMs.P99)
	}
	assertNoFloorStream(t, c.URLs())
}

// assertNoFloorStream checks that the floor deleted its stream.
func assertNoFloorStream(t *testing.T, urls string) {
	t.Helper()
	nc, js := natstest.Connect(t, urls)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, jsFloorStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream %s after the run: %v, want not found", jsFloorStream, err)
	}
}

// TestJetStreamFloorRefusesRemote keeps the load generator on this host.
func TestJetStreamFloorRefusesRemote(t *testing.T) {
	cfg := Config{Devices: 1, Senders: 1, Rate: 1, Duration: time.Second}
	for _, urls := range []string{"nats://10.0.0.5:4222", "nats://127.0.0.1:4222,nats://example.com:4222"} {
		if _, err := RunJetStreamFloor(context.Background(), cfg, JetStreamFloor{URLs: urls}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: %v, want ErrNotLoopback", urls, err)
		}
	}
	// Another scheme is refused for what it is.
	for _, urls := range []string{"http://127.0.0.1:4222", "tls://127.0.0.1:4222"} {
		_, err := RunJetStreamFloor(context.Background(), cfg, JetStreamFloor{URLs: urls})
		if err == nil || errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "must be nats://") {
			t.Errorf("%s: %v, want refused as not nats://", urls, err)
		}
	}
}
