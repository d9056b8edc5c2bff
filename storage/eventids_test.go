package storage_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/storage"
)

// TestLastEventID: 0 on a new database, then the highest id given, which
// stays after the events are acknowledged (ids are never reused).
func TestLastEventID(t *testing.T) {
	ctx := context.Background()
	db, err := storage.OpenDevice(ctx, filepath.Join(t.TempDir(), "herald.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := db.Phone("")
	if id, err := st.LastEventID(ctx); err != nil || id != 0 {
		t.Fatalf("new database: %d, %v; want 0", id, err)
	}
	var last int64
	for _, a := range []string{"a", "b", "a"} {
		if last, err = st.AddEvent(ctx, a, "raw", []byte(`{}`), time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AckEvents(ctx, "a", last); err != nil {
		t.Fatal(err)
	}
	if id, err := st.LastEventID(ctx); err != nil || id != last {
		t.Fatalf("after 3 events, the last acked: %d, %v; want %d", id, err, last)
	}
}
