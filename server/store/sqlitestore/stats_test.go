package sqlitestore_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/server/store/sqlitestore"
)

func TestQueueLength(t *testing.T) {
	ctx := context.Background()
	s := openService(t, true)
	addDevice(t, s, "a")
	addDevice(t, s, "b")
	tests := []struct {
		name string
		do   func(t *testing.T)
		want int64
	}{
		{"empty", func(*testing.T) {}, 0},
		{"three for a, two for b", func(t *testing.T) {
			for _, q := range []sqlitestore.Queued{queued("a", "1"), queued("a", "2"), queued("a", "3"), queued("b", "1"), queued("b", "2")} {
				if _, err := s.Enqueue(ctx, q, sqlitestore.EnqueueOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}, 5},
		{"a acks two", func(t *testing.T) {
			if err := s.Ack(ctx, "a", 2); err != nil {
				t.Fatal(err)
			}
		}, 3},
		{"b acks all", func(t *testing.T) {
			if err := s.Ack(ctx, "b", 2); err != nil {
				t.Fatal(err)
			}
		}, 1},
	}
	for _, tt := range tests {
		tt.do(t)
		got, err := s.QueueLength(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Fatalf("%s: queue length %d, want %d", tt.name, got, tt.want)
		}
	}
	s.Close()
	if _, err := s.QueueLength(ctx); err == nil {
		t.Fatal("queue length of a closed store: want an error")
	}
}
