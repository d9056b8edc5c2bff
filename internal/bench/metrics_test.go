package bench

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

func hist(count uint64, buckets ...float64) *dto.Histogram {
	h := &dto.Histogram{SampleCount: proto.Uint64(count)}
	for i := 0; i+1 < len(buckets); i += 2 {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(buckets[i]), CumulativeCount: proto.Uint64(uint64(buckets[i+1]))})
	}
	return h
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		q    float64
		h    *dto.Histogram
		want float64
	}{
		{"all in the first bucket", 0.99, hist(100, 0.001, 100, 0.01, 100, inf, 100), 0.00099},
		{"halfway through the second", 0.5, hist(100, 1, 0, 2, 100, inf, 100), 1.5},
		{"p99 in the last finite bucket", 0.99, hist(100, 1, 90, 2, 100, inf, 100), 1.9},
		{"beyond the last bound", 0.99, hist(100, 1, 50, 2, 60, inf, 100), 2},
		{"buckets out of order", 0.5, hist(100, 2, 100, 1, 0, inf, 100), 1.5},
		{"empty", 0.99, hist(0, 1, 0, inf, 0), math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quantile(tt.q, tt.h)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-12) {
				t.Fatalf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestScrapeServiceIdle reads a real, idle service: devices and queue are
// known, and figures that need traffic are left out rather than zero.
func TestScrapeServiceIdle(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	figs, err := ScrapeService(context.Background(), svc.URL())
	if err != nil {
		t.Fatal(err)
	}
	if figs[MetricConnected] != 0 || figs[MetricQueued] != 0 || len(figs) != 2 {
		t.Fatalf("idle service figures %v, want only 0 connected and 0 queued", figs)
	}
}

// TestRunReadsServiceMetrics drives real devices and notifications and
// checks that the service's figures came back with the result.
func TestRunReadsServiceMetrics(t *testing.T) {
	res, err := Run(context.Background(), Config{Devices: 5, Rate: 100, Duration: 500 * time.Millisecond,
		DataDir: t.TempDir(), Senders: 4, Drain: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := res.ServiceMetrics
	if m[MetricConnected] != 5 {
		t.Errorf("connected %v, want 5 (%v)", m[MetricConnected], m)
	}
	if m[MetricPerCommit] < 1 || m[MetricCommitMeanMs] <= 0 || m[MetricCommitP99Ms] <= 0 {
		t.Errorf("commit figures missing: %v", m)
	}
	if _, ok := m[MetricDeliverP99Ms]; !ok || res.Delivered == 0 {
		t.Errorf("no accept-to-deliver p99 (delivered %d): %v", res.Delivered, m)
	}
}

func TestScrapeServiceRefuses(t *testing.T) {
	answer := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name    string
		base    string
		wantErr error
	}{
		{"remote", "http://192.0.2.1:8790", ErrNotLoopback},
		{"not found", answer(http.StatusNotFound, "404 page not found"), nil},
		{"not the text format", answer(http.StatusOK, "{\"json\": true}"), nil},
		{"no herald metrics", answer(http.StatusOK, "# TYPE other_total counter\nother_total 3\n"), ErrNoMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			figs, err := ScrapeService(context.Background(), tt.base)
			if err == nil {
				t.Fatalf("got %v, want an error", figs)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}
