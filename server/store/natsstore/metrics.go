package natsstore

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The store's own metrics: the service registers a store that is a
// prometheus.Collector with its own (docs/metrics.md).
var (
	natsConnectedDesc = prometheus.NewDesc("herald_service_nats_connected",
		"1 while this node is connected to a NATS server, else 0 (setting up, reconnecting, closed).", nil, nil)
	natsReconnectsDesc = prometheus.NewDesc("herald_service_nats_reconnects_total",
		"Times this node's NATS connection was lost and made again, to the same server or another.", nil, nil)
	natsDisconnectsDesc = prometheus.NewDesc("herald_service_nats_disconnects_total",
		"Times this node's NATS connection was lost: closed by a server, broken, or found stale by its pings.", nil, nil)
	watchedKeysDesc = prometheus.NewDesc("herald_service_watched_keys",
		"Keys held by each of this node's watched copies of a bucket.", []string{"copy"}, nil)
	watchedAgeDesc = prometheus.NewDesc("herald_service_watched_last_event_age_seconds",
		"Seconds since each watched copy's watch last brought an event (or caught up with its bucket).", []string{"copy"}, nil)
	watchedLagDesc = prometheus.NewDesc("herald_service_watched_lag_seconds",
		"For each watched copy, how long after its write the last event its watch brought arrived.", []string{"copy"}, nil)
	watchedLiveDesc = prometheus.NewDesc("herald_service_watched_caught_up",
		"1 once each watched copy holds all its bucket held when its watch began, else 0.", []string{"copy"}, nil)
)

var _ prometheus.Collector = (*Store)(nil)

// Describe is prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{natsConnectedDesc, natsReconnectsDesc, natsDisconnectsDesc,
		watchedKeysDesc, watchedAgeDesc, watchedLagDesc, watchedLiveDesc} {
		ch <- d
	}
}

// Collect is prometheus.Collector. Until the store is set up only the
// connection's state is known: the copies are made as it is set up.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	ready := s.ready.Load() // after which nc and the copies are set
	connected := 0.0
	if ready && !s.closed.Load() && s.nc.IsConnected() {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(natsConnectedDesc, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(natsReconnectsDesc, prometheus.CounterValue, float64(s.reconnects.Load()))
	ch <- prometheus.MustNewConstMetric(natsDisconnectsDesc, prometheus.CounterValue, float64(s.disconnects.Load()))
	if !ready {
		return
	}
	for _, c := range s.copies() {
		keys, age, lag, live := c.stats()
		caught := 0.0
		if live {
			caught = 1
		}
		ch <- prometheus.MustNewConstMetric(watchedKeysDesc, prometheus.GaugeValue, float64(keys), c.name)
		ch <- prometheus.MustNewConstMetric(watchedAgeDesc, prometheus.GaugeValue, age.Seconds(), c.name)
		ch <- prometheus.MustNewConstMetric(watchedLagDesc, prometheus.GaugeValue, lag.Seconds(), c.name)
		ch <- prometheus.MustNewConstMetric(watchedLiveDesc, prometheus.GaugeValue, caught, c.name)
	}
}

type namedCopy struct {
	name  string
	stats func() (keys int, age, lag time.Duration, live bool)
}

// copies are the store's watched copies, by the name /metrics gives them.
func (s *Store) copies() []namedCopy {
	var cs []namedCopy
	if s.devCache != nil {
		cs = append(cs, namedCopy{"devices", s.devCache.stats})
	}
	if s.cache != nil && s.cache.watched != nil {
		cs = append(cs, namedCopy{"channels", s.cache.stats})
	}
	if s.presence != nil && s.presence.copy != nil {
		cs = append(cs, namedCopy{"presence", s.presence.copy.stats})
	}
	return cs
}
