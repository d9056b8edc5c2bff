package server_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

func class(k mpns.Kind, d mpns.Delay) string { return strconv.Itoa(mpns.ClassFor(k, d)) }

// TestDeliveryClasses proves, on a fake clock, that batched classes are held
// until their deadline and no longer, that everything held goes out in the
// one frame, and that an immediate notification takes the held ones along.
func TestDeliveryClasses(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, ts *testService, d *testDevice, uri string)
	}{
		{"450s deadline met, and the 900s one rides along", func(t *testing.T, ts *testService, d *testDevice, uri string) {
			wantStatus(t, post(t, uri, mpns.KindRaw, class(mpns.KindRaw, mpns.Within450s), "raw450", []byte("r")), 200, "Received", "Connected")
			ts.waitTimer(t0.Add(450 * time.Second))
			ts.clk.Advance(449 * time.Second)
			d.barrier()
			wantStatus(t, post(t, uri, mpns.KindToast, class(mpns.KindToast, mpns.Within900s), "toast900", toastBody("late")), 200, "Received", "Connected")
			d.barrier()
			ts.clk.Advance(time.Second)
			got := d.expectNotify()
			if ids := messageIDs(got); !slices.Equal(ids, []string{"raw450", "toast900"}) {
				t.Fatalf("flushed %v, want raw450 and toast900 in one frame", ids)
			}
		}},
		{"900s deadline met", func(t *testing.T, ts *testService, d *testDevice, uri string) {
			wantStatus(t, post(t, uri, mpns.KindTile, class(mpns.KindTile, mpns.Within900s), "tile900", tileBody("", set("Count", "3"))), 200, "Received", "Connected")
			ts.waitTimer(t0.Add(900 * time.Second))
			ts.clk.Advance(899 * time.Second)
			d.barrier()
			ts.clk.Advance(time.Second)
			if ids := messageIDs(d.expectNotify()); !slices.Equal(ids, []string{"tile900"}) {
				t.Fatalf("got %v", ids)
			}
		}},
		{"immediate flushes the held ones early", func(t *testing.T, ts *testService, d *testDevice, uri string) {
			post(t, uri, mpns.KindToast, class(mpns.KindToast, mpns.Within900s), "held900", toastBody("a"))
			ts.waitTimer(t0.Add(900 * time.Second))
			ts.clk.Advance(10 * time.Second)
			post(t, uri, mpns.KindRaw, class(mpns.KindRaw, mpns.Within450s), "held450", []byte("b"))
			ts.waitTimer(t0.Add(460 * time.Second))
			d.barrier()
			post(t, uri, mpns.KindRaw, class(mpns.KindRaw, mpns.Immediate), "now", []byte("c"))
			got := d.expectNotify()
			if ids := messageIDs(got); !slices.Equal(ids, []string{"held900", "held450", "now"}) {
				t.Fatalf("flushed %v, want all three in sequence order", ids)
			}
			if ts.clk.Now() != t0.Add(10*time.Second) {
				t.Fatal("the clock moved")
			}
		}},
		{"held while the earliest deadline is later than another", func(t *testing.T, ts *testService, d *testDevice, uri string) {
			post(t, uri, mpns.KindRaw, class(mpns.KindRaw, mpns.Within900s), "a900", []byte("a"))
			ts.waitTimer(t0.Add(900 * time.Second))
			ts.clk.Advance(100 * time.Second)
			post(t, uri, mpns.KindRaw, class(mpns.KindRaw, mpns.Within450s), "b450", []byte("b"))
			// The 450 s one, accepted at 100 s, is due at 550 s: before the 900 s one.
			ts.waitTimer(t0.Add(550 * time.Second))
			ts.clk.Advance(449 * time.Second)
			d.barrier()
			ts.clk.Advance(time.Second)
			if ids := messageIDs(d.expectNotify()); !slices.Equal(ids, []string{"a900", "b450"}) {
				t.Fatalf("got %v", ids)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startService(t, server.Config{})
			d := ts.enrol()
			_, uri := d.register("app", true, true)
			tt.run(t, ts, d, uri)
		})
	}
}
