package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints a result for people.
func WriteTable(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	where := "given process"
	if r.ServiceNote != "" {
		where = r.ServiceNote
	}
	row("service", "%s", where)
	if r.JetStreamFloor {
		row("devices", "%d (subjects of the stream)", r.Devices)
	} else {
		row("devices", "%d (connected in %.1f s)", r.Devices, r.ConnectS)
	}
	if r.ReconnectS > 0 {
		row("reconnected", "%d in %.2f s (%.0f hellos/s, service CPU %.0f µs a hello)", r.Devices, r.ReconnectS, r.HellosPerS, r.HelloCPUUs)
	}
	if r.FailoverS > 0 {
		row("service killed", "every device back on another node in %.2f s", r.FailoverS)
		if q := r.FailoverQuantilesS; len(q) == 3 {
			row("back after the kill", "50%% in %.2f s, 90%% in %.2f s, 99%% in %.2f s", q[0], q[1], q[2])
		}
	}
	if !r.JetStreamFloor {
		row("rss before / idle", "%d / %d KiB (%.1f KiB per device)", r.Before.RSSKiB, r.Idle.RSSKiB, r.KiBPerDev)
	}
	if m := r.ServiceMetrics; m != nil {
		deliver := "nothing delivered"
		if r.Delivered > 0 {
			deliver = fmt.Sprintf("accept to deliver p99 %.2f ms", m[MetricDeliverP99Ms])
		}
		row("service metrics", "%.0f connected, commit mean/p99 %.2f / %.2f ms, %.1f per commit, %s", m[MetricConnected], m[MetricCommitMeanMs], m[MetricCommitP99Ms], m[MetricPerCommit], deliver)
	}
	if r.Sent > 0 {
		row("rate asked / achieved", "%.0f / %.0f per s over %.1f s", r.Rate, r.AchievedRate, r.DurationS)
		row("sent / accepted", "%d / %d (refused %d, errors %d)", r.Sent, r.Accepted, r.Refused, r.Errors)
		row("delivered / lost / dup", "%d / %d / %d", r.Delivered, r.Lost, r.Duplicated)
		if r.JetStreamFloor {
			row("removed / left", "%d purges / %d messages in the stream", r.Removed, r.LeftInStream)
		}
		row("latency p50/p90/p99/max", "%.2f / %.2f / %.2f / %.2f ms", r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
		if !r.JetStreamFloor {
			row("service cpu", "%.0f%% of one core while sending", r.CPUPercent)
		}
		if len(r.CPU) > 0 {
			row("cpu per delivered", "%.0f µs (%s)", r.CPUPerDeliveredUs, cpuByName(r.CPU, r.Delivered))
		}
		if !r.JetStreamFloor {
			row("rss after", "%d KiB", r.After.RSSKiB)
		}
	}
	if f := r.Floor; f != nil {
		row("floor", "%s", f.ServiceNote)
		if r.ReconnectS > 0 && f.HellosPerS > 0 {
			row("floor hellos", "%.0f per s; service %.2f × the floor's", f.HellosPerS, r.HellosPerS/f.HellosPerS)
		}
		if r.Sent > 0 && f.AchievedRate > 0 {
			row("floor rate achieved", "%.0f per s; service %.2f × the floor's", f.AchievedRate, r.AchievedRate/f.AchievedRate)
			row("floor latency p50/p99", "%.2f / %.2f ms; service p99 %.2f × the floor's", f.LatencyMs.P50, f.LatencyMs.P99, ratio(r.LatencyMs.P99, f.LatencyMs.P99))
			row("floor delivered / lost / dup", "%d / %d / %d", f.Delivered, f.Lost, f.Duplicated)
		}
	}
	if d := r.DurableFloor; d != nil {
		row("durable floor", "%s", d.ServiceNote)
		if r.Sent > 0 && d.AchievedRate > 0 {
			vsFloor := ""
			if f := r.Floor; f != nil && f.AchievedRate > 0 {
				vsFloor = fmt.Sprintf(", %.2f × the floor's", d.AchievedRate/f.AchievedRate)
			}
			row("durable floor rate achieved", "%.0f per s%s; service %.2f × the durable floor's", d.AchievedRate, vsFloor, r.AchievedRate/d.AchievedRate)
			row("durable floor latency p50/p99", "%.2f / %.2f ms; service p99 %.2f × the durable floor's", d.LatencyMs.P50, d.LatencyMs.P99, ratio(r.LatencyMs.P99, d.LatencyMs.P99))
			row("durable floor delivered / lost / dup", "%d / %d / %d", d.Delivered, d.Lost, d.Duplicated)
		}
		if c := d.DurableCommits; c != nil {
			row("durable floor commits", "%d, mean %.2f ms, %.1f notifications and %.1f acks per commit", c.Commits, c.MeanMs,
				float64(c.Inserts)/float64(c.Commits), float64(c.Acks)/float64(c.Commits))
		}
		if d.RowsLeft != nil {
			row("durable floor rows left", "%d (committed, not acked, once the acks drained)", *d.RowsLeft)
		}
	}
	return tw.Flush()
}

// cpuByName is the CPU per delivered notification of each kind of
// process (its command name), e.g. "nats-server 3 × 210 µs".
func cpuByName(cpu []ProcCPU, delivered int64) string {
	type group struct {
		n    int
		secs float64
	}
	var names []string
	groups := map[string]*group{}
	for _, c := range cpu {
		g := groups[c.Name]
		if g == nil {
			g = &group{}
			groups[c.Name] = g
			names = append(names, c.Name)
		}
		g.n++
		g.secs += c.Secs
	}
	parts := make([]string, 0, len(names))
	for _, n := range names {
		us := 0.0
		if delivered > 0 {
			us = 1e6 * groups[n].secs / float64(delivered)
		}
		parts = append(parts, fmt.Sprintf("%s ×%d %.0f µs", n, groups[n].n, us))
	}
	return strings.Join(parts, ", ")
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
