package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/server/store"
)

// storeMetrics time every store call, whichever the backend: the service
// sees its store through store.Observed, which tells them.
type storeMetrics struct {
	seconds [store.NumOps]prometheus.Observer
	errors  [store.NumOps]prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_service_store_seconds",
		Help:    "Time each call to the service's store took, by operation (either backend; a write until durable).",
		Buckets: latencyBuckets,
	}, []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_service_store_errors_total",
		Help: "Calls to the service's store that failed, by operation (not counting answers such as not found or queue full).",
	}, []string{"op"})
	reg.MustRegister(seconds, errs)
	m := &storeMetrics{}
	// Resolved once, so a call neither hashes a label nor allocates.
	for op := range store.NumOps {
		m.seconds[op] = seconds.WithLabelValues(op.String())
		m.errors[op] = errs.WithLabelValues(op.String())
	}
	return m
}

// ObserveStore is store.Observer.
func (m *storeMetrics) ObserveStore(op store.Op, took time.Duration, err error) {
	if op >= store.NumOps {
		return
	}
	m.seconds[op].Observe(took.Seconds())
	if store.Failed(err) {
		m.errors[op].Inc()
	}
}
