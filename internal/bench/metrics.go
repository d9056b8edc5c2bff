package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/heraldpush/herald/server"
)

// Keys of Result.ServiceMetrics: the service's own figures, read from its
// /metrics after sending. Latencies are in milliseconds; the p99s are
// estimated from histogram buckets as Prometheus's histogram_quantile does.
const (
	MetricConnected      = "connected_devices"
	MetricQueued         = "queued_notifications"
	MetricCommitMeanMs   = "commit_ms_mean"
	MetricCommitP99Ms    = "commit_ms_p99"
	MetricPerCommit      = "requests_per_commit"
	MetricDeliverP99Ms   = "accept_to_deliver_ms_p99"
	MetricAckP99Ms       = "ack_ms_p99"
	maxMetricsBody       = 16 << 20
	metricsScrapeTimeout = 10 * time.Second
)

// ErrNoMetrics is returned when the service's answer has none of the
// figures the tool reads (not a Herald service, or an older one).
var ErrNoMetrics = errors.New("bench: the service exposes no herald_service_ metrics")

// ScrapeService reads the /metrics of the service at base (a loopback
// URL) and returns the figures the load tool reports, by the Metric* keys.
// A figure the service has nothing for yet (no commit, no delivery) is
// left out.
func ScrapeService(ctx context.Context, base string) (map[string]float64, error) {
	if err := CheckLoopback(base); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, metricsScrapeTimeout)
	defer cancel()
	url := strings.TrimRight(base, "/") + server.MetricsPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	// The text format: what any version of the service can answer.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: metrics: GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: parsing %s: %w", url, err)
	}
	figs := ServiceFigures(fams)
	if len(figs) == 0 {
		return nil, ErrNoMetrics
	}
	return figs, nil
}

// ServiceFigures picks the load tool's figures out of a scrape.
func ServiceFigures(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	gauge := func(key, name string) {
		if m := single(fams, name); m != nil && m.Gauge != nil {
			out[key] = m.Gauge.GetValue()
		}
	}
	gauge(MetricConnected, "herald_service_connected_devices")
	gauge(MetricQueued, "herald_service_queued_notifications")

	if h := histogram(fams, "herald_service_store_commit_seconds"); h != nil && h.GetSampleCount() > 0 {
		out[MetricCommitMeanMs] = 1000 * h.GetSampleSum() / float64(h.GetSampleCount())
		out[MetricCommitP99Ms] = 1000 * Quantile(0.99, h)
	}
	if h := histogram(fams, "herald_service_store_commit_requests"); h != nil && h.GetSampleCount() > 0 {
		out[MetricPerCommit] = h.GetSampleSum() / float64(h.GetSampleCount())
	}
	if h := histogram(fams, "herald_service_accept_to_deliver_seconds"); h != nil && h.GetSampleCount() > 0 {
		out[MetricDeliverP99Ms] = 1000 * Quantile(0.99, h)
	}
	if h := histogram(fams, "herald_service_ack_latency_seconds"); h != nil && h.GetSampleCount() > 0 {
		out[MetricAckP99Ms] = 1000 * Quantile(0.99, h)
	}
	return out
}

// single is a family's one unlabelled series, or nil.
func single(fams map[string]*dto.MetricFamily, name string) *dto.Metric {
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 {
		return nil
	}
	return f.GetMetric()[0]
}

func histogram(fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	if m := single(fams, name); m != nil {
		return m.Histogram
	}
	return nil
}

// Quantile estimates the q-quantile (0 < q < 1) of a histogram the way
// Prometheus's histogram_quantile does: it finds the bucket the rank falls
// in and interpolates linearly inside it, taking 0 as the lower bound of
// the first bucket. A rank in the +Inf bucket gives the highest finite
// bound, since nothing is known above it. An empty histogram gives NaN.
func Quantile(q float64, h *dto.Histogram) float64 {
	total := float64(h.GetSampleCount())
	if total == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	type bucket struct{ upper, cum float64 }
	var bs []bucket
	for _, b := range h.GetBucket() {
		bs = append(bs, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].upper < bs[j].upper })
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if math.IsInf(b.upper, +1) {
			break
		}
		if b.cum >= rank {
			if b.cum == below {
				return b.upper
			}
			return lower + (b.upper-lower)*(rank-below)/(b.cum-below)
		}
		lower, below = b.upper, b.cum
	}
	return lower
}
