package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PhoneSet is the phones a metrics collector reports on: one for
// `herald run`, many for `herald emulate` (ui.Phones is one).
type PhoneSet interface {
	Names() []string
	Phone(name string) *Daemon
}

// metricsScrapeTimeout bounds the database reads of one scrape; an
// emulator of thousands of phones reads one counter set per phone.
const metricsScrapeTimeout = 10 * time.Second

// Collector reports each phone's link and dispatch figures to Prometheus.
// It reads what `herald status` shows when scraped, so the daemon keeps no
// bookkeeping for it.
type Collector struct {
	phones PhoneSet

	connected, heartbeat, settled *prometheus.Desc
	natGood, natBad               *prometheus.Desc
	reconnects, pings, deadLinks  *prometheus.Desc
	wakeups, dispatch             *prometheus.Desc
	ceiling, failedDay            *prometheus.Desc
}

// NewCollector returns a collector for phones. Every series carries the
// label phone: the emulator's device name, "" for the one phone of
// `herald run`.
func NewCollector(phones PhoneSet) *Collector {
	phone := []string{"phone"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("herald_daemon_"+name, help, append(phone, labels...), nil)
	}
	return &Collector{
		phones:     phones,
		connected:  desc("link_connected", "1 while the link to the notification service is up, else 0."),
		heartbeat:  desc("heartbeat_interval_seconds", "The link's current heartbeat interval."),
		settled:    desc("heartbeat_settled", "1 once the heartbeat search on this network is over, else 0."),
		natGood:    desc("nat_idle_survived_seconds", "The longest idle time seen to survive on this network (the NAT's idle timeout is at least this); absent until learned."),
		natBad:     desc("nat_idle_died_seconds", "The shortest idle time seen to kill the link on this network (the NAT's idle timeout is below this); absent until learned."),
		reconnects: desc("reconnects_total", "Times the link went down or a connection attempt failed, each followed by a reconnect attempt, since the daemon started."),
		pings:      desc("heartbeats_total", "Heartbeat pings sent since the daemon started."),
		deadLinks:  desc("dead_links_total", "Heartbeats that went unanswered (the link was found dead) since the daemon started."),
		ceiling:    desc("heartbeat_ceiling_seconds", "The longest heartbeat interval the link may learn on this network now (lower on a metered one, and under the service's max_idle)."),
		failedDay:  desc("heartbeats_failed_last_day", "Heartbeats that went unanswered on this network over the last 24 hours (failed probes, each of which cost a reconnect)."),
		wakeups:    desc("wakeups_last_hour", "The link's own outbound packets over the last hour, by cause (heartbeat, reconnect, ack).", "cause"),
		dispatch:   desc("dispatch_total", "Notifications dispatched, by outcome: raw_delivered, raw_dropped, toasts_app, toasts_shell, tiles_updated, handler_* and errors (the daemon's stored counters, kept across restarts).", "outcome"),
	}
}

// dispatchOutcomes are reported even before they first happen, so a rate
// over them starts from zero.
var dispatchOutcomes = []string{CountRawDelivered, CountRawDropped, CountToastsApp, CountToastsShell, CountTilesUpdated}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.heartbeat, c.settled, c.natGood, c.natBad,
		c.reconnects, c.pings, c.deadLinks, c.wakeups, c.dispatch, c.ceiling, c.failedDay} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsScrapeTimeout)
	defer cancel()
	for _, name := range c.phones.Names() {
		if d := c.phones.Phone(name); d != nil {
			c.collectPhone(ctx, ch, name, d)
		}
	}
}

func (c *Collector) collectPhone(ctx context.Context, ch chan<- prometheus.Metric, name string, d *Daemon) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, append([]string{name}, labels...)...)
	}
	ls := d.link.Stats()
	gauge(c.connected, boolFloat(ls.Connected))
	gauge(c.heartbeat, ls.Heartbeat.Seconds())
	gauge(c.settled, boolFloat(ls.Learned.Settled))
	gauge(c.ceiling, ls.Ceiling.Seconds())
	gauge(c.failedDay, float64(ls.FailedLastDay))
	if ls.Learned.Good > 0 {
		gauge(c.natGood, ls.Learned.Good.Seconds())
	}
	if ls.Learned.Bad > 0 {
		gauge(c.natBad, ls.Learned.Bad.Seconds())
	}
	counter(c.reconnects, float64(ls.Reconnects))
	counter(c.pings, float64(ls.Pings))
	counter(c.deadLinks, float64(ls.DeadLinks))
	gauge(c.wakeups, float64(ls.Wakeups.Heartbeats), "heartbeat")
	gauge(c.wakeups, float64(ls.Wakeups.Reconnects), "reconnect")
	gauge(c.wakeups, float64(ls.Wakeups.Acks), "ack")

	counts, err := d.store.Counters(ctx)
	if err != nil {
		d.log.Warn("metrics: reading the dispatch counters failed", "phone", name, "err", err)
		ch <- prometheus.NewInvalidMetric(c.dispatch, err)
		return
	}
	for _, o := range dispatchOutcomes {
		if _, ok := counts[o]; !ok {
			counter(c.dispatch, 0, o)
		}
	}
	for o, v := range counts {
		counter(c.dispatch, float64(v), o)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
