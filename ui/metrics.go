package ui

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldpush/herald/daemon"
)

// MetricsPath is where the UI address serves the phones' Prometheus
// metrics (prefix herald_daemon_).
const MetricsPath = "/metrics"

// metricsHandler serves the phones' figures, read when scraped, and the
// process's own (resident memory, CPU, goroutines). The registry is the
// handler's own, so several UIs in one process do not collide.
func (u *UI) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(daemon.NewCollector(u.cfg.Phones),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(u.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}
