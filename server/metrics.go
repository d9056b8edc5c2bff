package server

import (
	"context"
	"github.com/heraldpush/herald/wire"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldpush/herald/mpns"
)

// MetricsPath is where the service serves its Prometheus metrics.
const MetricsPath = "/metrics"

// latencyBuckets cover what a healthy service shows (well under a
// millisecond to a few) and what an unhealthy one does (up to seconds), in
// roughly 1-2-5 steps.
var latencyBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}

// deliverBuckets extend latencyBuckets: accept-to-deliver also spans the
// batched classes' 450 and 900 s and devices away for hours, and those
// should land in a bucket of their own rather than all in +Inf.
var deliverBuckets = append(append([]float64{}, latencyBuckets...), 30, 60, 300, 450, 900, 3600, 6*3600, 24*3600)

// Label values of herald_service_notifications_total. status is the
// X-NotificationStatus answered, or "none" when MPNS sends no such header
// (400, 401, 403, 405, 503); kind "unknown" is a target no kind matches.
const (
	statusNone  = "none"
	kindUnknown = "unknown"
)

// outcomeKey names one child of the notifications counter.
type outcomeKey struct {
	kind, status string
	code         int
}

// metrics are one Server's Prometheus collectors, in a registry of its own
// so that many servers in one process (tests, the load tool) do not collide.
type metrics struct {
	reg *prometheus.Registry

	notifications *prometheus.CounterVec
	// outcomes holds the children of notifications for every outcome the
	// service answers, resolved once so the hot path neither hashes label
	// values nor allocates; it is read-only after newMetrics.
	outcomes map[outcomeKey]prometheus.Counter

	deliverLatency prometheus.Histogram
	ackLatency     prometheus.Histogram
	connects       prometheus.Counter
	reconnects     prometheus.Counter
	commitLatency  prometheus.Histogram
	commitRequests prometheus.Histogram
	commitErrors   prometheus.Counter
	refusals       *prometheus.CounterVec // handshake.go
	store          *storeMetrics          // storemetrics.go
	forgotten      prometheus.Counter
	unacked        prometheus.Counter // session.go
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_service_notifications_total",
			Help: "Notifications posted to channel URIs (multicast: one per channel), by kind, X-NotificationStatus answered and HTTP code.",
		}, []string{"kind", "status", "code"}),
		deliverLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_service_accept_to_deliver_seconds",
			Help:    "Time from a notification's acceptance to the write of the notify frame carrying it to the device (each write, so a resend after a reconnect counts again).",
			Buckets: deliverBuckets,
		}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_service_ack_latency_seconds",
			Help:    "Time from writing a device's latest notify frame to the ack that covers it (sampled: one outstanding batch per device).",
			Buckets: latencyBuckets,
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_service_device_connects_total",
			Help: "Device sessions started (enrolments and reconnects).",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_service_device_reconnects_total",
			Help: "Device sessions started by a device already enrolled.",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_service_store_commit_seconds",
			Help:    "Time from begin to durable commit of each group-commit transaction of the store's writes.",
			Buckets: latencyBuckets,
		}),
		commitRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_service_store_commit_requests",
			Help:    "Writes (accepted notifications, acks, device and channel updates) carried by each group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_service_store_commit_errors_total",
			Help: "Write transactions that failed. A failed group's requests are each tried once more alone; a sender whose request fails again is answered 503.",
		}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_service_devices_forgotten_total",
			Help: "Devices deleted, with their channels and queues, for being away longer than --forget-devices-after (counted at the end of each sweep).",
		}),
	}
	m.reg.MustRegister(m.notifications, m.deliverLatency, m.ackLatency, m.connects, m.reconnects,
		m.commitLatency, m.commitRequests, m.commitErrors, m.forgotten,
		// The process's own: resident memory, CPU, open files, goroutines.
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	m.refusals = newRefusals(m.reg)
	m.unacked = newUnacked(m.reg)
	m.store = newStoreMetrics(m.reg)

	answers := []struct {
		status string
		code   int
	}{
		{mpns.StatusReceived, http.StatusOK},
		{mpns.StatusQueueFull, http.StatusOK},
		{mpns.StatusSuppressed, http.StatusOK},
		{mpns.StatusDropped, http.StatusNotFound},
		{mpns.StatusDropped, http.StatusNotAcceptable},
		{mpns.StatusDropped, http.StatusPreconditionFailed},
		{statusNone, http.StatusBadRequest},
		{statusNone, http.StatusUnauthorized},
		{statusNone, http.StatusForbidden},
		{statusNone, http.StatusMethodNotAllowed},
		{statusNone, http.StatusServiceUnavailable},
	}
	m.outcomes = map[outcomeKey]prometheus.Counter{}
	kinds := []string{kindUnknown}
	for _, s := range mpns.Kinds() {
		kinds = append(kinds, string(s.Kind))
	}
	for _, kind := range kinds {
		for _, a := range answers {
			k := outcomeKey{kind, a.status, a.code}
			m.outcomes[k] = m.notifications.WithLabelValues(kind, a.status, strconv.Itoa(a.code))
		}
	}
	return m
}

// instrument adds the collectors that read the server's own state when
// scraped: the live sessions and the queue.
func (m *metrics) instrument(s *Server, st Store) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_service_connected_devices",
		Help: "Devices with a live websocket session.",
	}, func() float64 { return float64(s.ConnectedCount()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_service_ready",
		Help: "1 when the node takes senders and devices (its store is usable), else 0; as " + ReadyPath + " answers.",
	}, func() float64 {
		if s.Ready() != nil {
			return 0
		}
		return 1
	}))
	m.reg.MustRegister(&queueCollector{store: st, log: s.log, desc: prometheus.NewDesc("herald_service_queued_notifications",
		"Notifications accepted and not yet acknowledged by their device, across all devices.", nil, nil)})
}

// handler serves the registry. A failing collector (the queue count) is
// reported in the log and left out, and the rest is still served.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // the handler's own error counters
	})
}

// notification counts one answered notification.
func (m *metrics) notification(kind string, o outcome) {
	status := o.Notification
	if status == "" {
		status = statusNone
	}
	if c, ok := m.outcomes[outcomeKey{kind, status, o.Code}]; ok {
		c.Inc()
		return
	}
	m.notifications.WithLabelValues(kind, status, strconv.Itoa(o.Code)).Inc()
}

// delivered observes the accept-to-deliver latency of notifications
// about to be written to their device.
func (m *metrics) delivered(ns []wire.Notification, now time.Time) {
	for i := range ns {
		if ns[i].AcceptedAt != 0 {
			m.deliverLatency.Observe(now.Sub(time.UnixMilli(ns[i].AcceptedAt)).Seconds())
		}
	}
}

// connected counts a session that started; known is false for an
// enrolment.
func (m *metrics) connected(known bool) {
	m.connects.Inc()
	if known {
		m.reconnects.Inc()
	}
}

// commit is told of the store's commits (store.CommitReporter).
func (m *metrics) commit(requests int, took time.Duration, err error) {
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commitLatency.Observe(took.Seconds())
	m.commitRequests.Observe(float64(requests))
}

// ackWait is the write of a session's latest notify frame, kept until an
// ack covers it. One per session, overwritten by each write: a sample, but
// one that costs a device nothing to keep.
type ackWait struct {
	seq uint64 // the frame's highest seq; 0 when nothing is outstanding
	at  time.Time
}

// wrote records that a notify frame up to seq is being written at.
func (w *ackWait) wrote(seq uint64, at time.Time) { *w = ackWait{seq: seq, at: at} }

// covered reports the ack latency when an ack of seq at now covers the
// latest written frame.
func (w *ackWait) covered(seq uint64, now time.Time) (time.Duration, bool) {
	if w.seq == 0 || seq < w.seq {
		return 0, false
	}
	w.seq = 0
	return now.Sub(w.at), true
}

// kindLabel is the kind a POST asks for, read from its target as
// mpns.ParseRequest reads it, for counting requests refused before or
// while parsing them.
func kindLabel(h http.Header) string {
	if k, ok := mpns.KindForTarget(targetHeader(h)); ok {
		return string(k)
	}
	return kindUnknown
}

// targetKey is X-WindowsPhone-Target as Go's server stores it.
var targetKey = http.CanonicalHeaderKey(mpns.HeaderTarget)

// targetHeader is headerAnyCase for the target without its allocation:
// http.Header.Get canonicalises the name on every call.
func targetHeader(h http.Header) string {
	if v := h[targetKey]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, targetKey) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// queueCollector counts the queue when scraped, so accepting and acking
// keep no running total.
type queueCollector struct {
	store Store
	log   *slog.Logger
	desc  *prometheus.Desc
}

// queueScrapeTimeout bounds the count; a scrape that waits longer on a busy
// database is better answered without it.
const queueScrapeTimeout = 5 * time.Second

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	n, err := c.store.QueueLength(ctx)
	if err != nil {
		c.log.Warn("metrics: counting the queue failed", "err", err)
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}
