package testenv

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the families of one scrape, by name.
type Metrics map[string]*dto.MetricFamily

// Scrape GETs url (a /metrics endpoint) over HTTP, as Prometheus would,
// and parses the text exposition.
func Scrape(t testing.TB, url string) Metrics {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// Series finds the series of family name with exactly the given labels
// (name, value pairs), or nil.
func (m Metrics) Series(name string, labels ...string) *dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
	for _, s := range f.GetMetric() {
		match := len(s.GetLabel())*2 == len(labels)
		for i := 0; match && i+1 < len(labels); i += 2 {
			found := false
			for _, l := range s.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			match = found
		}
		if match {
			return s
		}
	}
	return nil
}

// Value is a counter's or gauge's value, -1 when the series is missing.
func (m Metrics) Value(name string, labels ...string) float64 {
	s := m.Series(name, labels...)
	switch {
	case s == nil:
		return -1
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	}
	return -1
}

// Histogram is a histogram's sample count and sum; count -1 when missing.
func (m Metrics) Histogram(name string, labels ...string) (count int64, sum float64) {
	s := m.Series(name, labels...)
	if s == nil || s.Histogram == nil {
		return -1, 0
	}
	return int64(s.Histogram.GetSampleCount()), s.Histogram.GetSampleSum()
}
