package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var devT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTestDevice(t *testing.T, file string) *DeviceDB {
	t.Helper()
	d, err := OpenDevice(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestDevicePool checks that every connection of the device pool has the
// small page cache, which a pragma sets per connection only.
func TestDevicePool(t *testing.T) {
	d := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db"))
	ctx := context.Background()
	if got := d.db.Stats().MaxOpenConnections; got != deviceConns {
		t.Fatalf("MaxOpenConnections = %d, want %d", got, deviceConns)
	}
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range deviceConns {
		c, err := d.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var size int
		if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		if size != -deviceCacheKiB {
			t.Errorf("connection %d: cache_size = %d, want %d", i, size, -deviceCacheKiB)
		}
	}
	if got := d.db.Stats().OpenConnections; got != deviceConns {
		t.Errorf("%d connections open, want %d", got, deviceConns)
	}
}

// TestApplyBookkeeping checks the apply transaction's all-or-nothing
// bookkeeping: counters summed per batch and written with the applied
// sequence number, nothing written when the batch fails, and a batch
// already applied not run again.
func TestApplyBookkeeping(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name        string
		seq         uint64
		counts      []string
		fail        error
		wantRun     bool
		wantSeq     uint64
		wantCounter map[string]int64
	}{
		{name: "counts summed", seq: 12, counts: []string{"a", "b", "a", "a"}, wantRun: true, wantSeq: 12,
			wantCounter: map[string]int64{"a": 3, "b": 1}},
		{name: "failed batch writes nothing", seq: 12, counts: []string{"a"}, fail: errBoom, wantRun: true, wantSeq: 5,
			wantCounter: map[string]int64{}},
		{name: "applied before", seq: 5, counts: []string{"a"}, wantRun: false, wantSeq: 5, wantCounter: map[string]int64{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			d := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db"))
			s := d.Phone("")
			if err := s.SaveIdentity(ctx, Identity{Service: "svc", DeviceID: "dev", Secret: "s", EnrolledAt: devT0}); err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(ctx, "svc", 5, devT0, func(*ApplyTx, uint64) error { return nil }); err != nil {
				t.Fatal(err)
			}
			ran := false
			err := s.Apply(ctx, "svc", c.seq, devT0, func(tx *ApplyTx, applied uint64) error {
				ran = true
				if applied != 5 {
					t.Errorf("applied = %d, want 5", applied)
				}
				for _, n := range c.counts {
					if err := tx.Count(n, 1); err != nil {
						return err
					}
				}
				return c.fail
			})
			if !errors.Is(err, c.fail) || (c.fail == nil && err != nil) {
				t.Fatalf("Apply = %v, want %v", err, c.fail)
			}
			if ran != c.wantRun {
				t.Errorf("batch ran = %v, want %v", ran, c.wantRun)
			}
			id, err := s.Identity(ctx, "svc")
			if err != nil {
				t.Fatal(err)
			}
			if id.AppliedSeq != c.wantSeq {
				t.Errorf("applied_seq = %d, want %d", id.AppliedSeq, c.wantSeq)
			}
			got, err := s.Counters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.wantCounter) {
				t.Errorf("counters = %v, want %v", got, c.wantCounter)
			}
			for n, v := range c.wantCounter {
				if got[n] != v {
					t.Errorf("counter %s = %d, want %d", n, got[n], v)
				}
			}
		})
	}
}

// TestApplyTxLookups checks that a batch sees its channels and apps as
// they were when it began, found or not, and that statements prepared at
// open work again after the database is reopened.
func TestApplyTxLookups(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "herald.db")
	for round := range 2 {
		d, err := OpenDevice(ctx, file)
		if err != nil {
			t.Fatal(err)
		}
		s := d.Phone("")
		if round == 0 {
			if err := s.SaveIdentity(ctx, Identity{Service: "svc", DeviceID: "dev", Secret: "s", EnrolledAt: devT0}); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveChannel(ctx, LocalChannel{App: "mail", Name: "default", ChannelID: "c1", URI: "http://x/c1", CreatedAt: devT0, UpdatedAt: devT0}); err != nil {
				t.Fatal(err)
			}
			if err := s.SetRunning(ctx, "mail", devT0.Add(time.Minute), true); err != nil {
				t.Fatal(err)
			}
		}
		err = s.Apply(ctx, "svc", uint64(round+1), devT0, func(tx *ApplyTx, _ uint64) error {
			for range 3 {
				ch, err := tx.ChannelByID("c1")
				if err != nil || ch.App != "mail" {
					t.Errorf("ChannelByID(c1) = %+v, %v; want mail's channel", ch, err)
				}
				if _, err := tx.ChannelByID("nope"); !errors.Is(err, ErrNotFound) {
					t.Errorf("ChannelByID(nope) = %v, want ErrNotFound", err)
				}
				running, fg, err := tx.Running("mail")
				if err != nil || !running || !fg {
					t.Errorf("Running(mail) = %v, %v, %v; want running in the foreground", running, fg, err)
				}
				if running, _, err := tx.Running("other"); err != nil || running {
					t.Errorf("Running(other) = %v, %v; want not running", running, err)
				}
			}
			return tx.Count("seen", 1)
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	d := openTestDevice(t, file)
	c, err := d.Phone("").Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c["seen"] != 2 {
		t.Errorf("counter seen = %d, want 2 (one per round)", c["seen"])
	}
}

// The device database and its -wal and -shm files are 0600 even in a
// directory others may read (a data directory prepared 0755 by hand or by
// a package), and a database an earlier version left 0644 is tightened.
func TestDeviceFilesPrivate(t *testing.T) {
	for _, tt := range []struct {
		name     string
		existing os.FileMode // 0: no file before the open
	}{
		{"new database", 0},
		{"database left 0644", 0o644},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
				t.Fatal(err)
			}
			file := filepath.Join(dir, "herald.db")
			if tt.existing != 0 {
				if err := os.WriteFile(file, nil, tt.existing); err != nil {
					t.Fatal(err)
				}
				os.Chmod(file, tt.existing)
			}
			d := openTestDevice(t, file)
			// A write, so the WAL and its index exist.
			if err := d.Phone("").SaveIdentity(context.Background(), Identity{Service: "http://svc", DeviceID: "d", Secret: "s", EnrolledAt: devT0}); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{file, file + "-wal", file + "-shm"} {
				st, err := os.Stat(name)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", filepath.Base(name), st.Mode().Perm())
				}
			}
		})
	}
}

// The first claim of an app id wins; each phone of a database has its own
// owners.
func TestAppOwners(t *testing.T) {
	d := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db"))
	ctx := context.Background()
	p1, p2 := d.Phone("phone-1"), d.Phone("phone-2")
	if _, err := p1.AppOwner(ctx, "mail"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("owner before any claim: %v", err)
	}
	steps := []struct {
		store *DeviceStore
		app   string
		uid   uint32
		want  uint32
	}{
		{p1, "mail", 1001, 1001},
		{p1, "mail", 1002, 1001},
		{p1, "mail", 0, 1001},
		{p2, "mail", 1002, 1002},
		{p1, "news", 4294967294, 4294967294},
	}
	for _, s := range steps {
		got, err := s.store.ClaimApp(ctx, s.app, s.uid, devT0)
		if err != nil || got != s.want {
			t.Fatalf("%s claimed by %d: owner %d, %v; want %d", s.app, s.uid, got, err, s.want)
		}
	}
	owners, err := p1.AppOwners(ctx)
	if err != nil || len(owners) != 2 || owners["mail"] != 1001 || owners["news"] != 4294967294 {
		t.Fatalf("owners %v, %v", owners, err)
	}
}

// TestReplaceEvent: a state event supersedes the app's waiting events of
// its type only, and leaves other apps and other types alone.
func TestReplaceEvent(t *testing.T) {
	ctx := context.Background()
	s := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db")).Phone("")
	add := func(app, typ, data string) int64 {
		t.Helper()
		id, err := s.AddEvent(ctx, app, typ, []byte(data), devT0)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	add("a", "connection", "down")
	raw := add("a", "raw", "r1")
	add("a", "connection", "up")
	other := add("b", "connection", "b-up")
	newest, err := s.ReplaceEvent(ctx, "a", "connection", []byte("up again"), devT0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, "a", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != raw || got[1].ID != newest || string(got[1].Data) != "up again" {
		t.Fatalf("a's events %+v, want the raw one and the replacement", got)
	}
	if got, _ := s.Events(ctx, "b", 0, 10); len(got) != 1 || got[0].ID != other {
		t.Fatalf("b's events %+v, want its own untouched", got)
	}
}

// TestRawLog: the raw log keeps each app's newest RawLogPerApp raw
// notifications, oldest first, with their outcome and times, and trims
// itself however long the phone runs.
func TestRawLog(t *testing.T) {
	ctx := context.Background()
	db := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db"))
	s := db.Phone("")
	if err := s.SaveIdentity(ctx, Identity{Service: "svc", DeviceID: "d", Secret: "s", EnrolledAt: devT0}); err != nil {
		t.Fatal(err)
	}
	const many = RawLogPerApp*3 + 7
	sent := devT0.Add(-time.Minute)
	for i := 1; i <= many; i++ {
		err := s.Apply(ctx, "svc", uint64(i), devT0, func(tx *ApplyTx, _ uint64) error {
			outcome := RawToApp
			if i%2 == 0 {
				outcome = RawDropped
			}
			if err := tx.AddRaw(RawRecord{App: "a", MessageID: fmt.Sprint(i), Body: []byte{byte(i)}, Outcome: outcome, Seq: uint64(i), SentAt: sent}); err != nil {
				return err
			}
			if i == 1 {
				return tx.AddRaw(RawRecord{App: "b", MessageID: "b1", Body: []byte("x"), Outcome: RawToHandler, Seq: 1})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RawLog(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != RawLogPerApp || got[0].MessageID != fmt.Sprint(many-RawLogPerApp+1) || got[len(got)-1].MessageID != fmt.Sprint(many) {
		t.Fatalf("a's raw log: %d entries from %s to %s, want the newest %d", len(got), got[0].MessageID, got[len(got)-1].MessageID, RawLogPerApp)
	}
	last := got[len(got)-1]
	if !last.SentAt.Equal(sent) || !last.ReceivedAt.Equal(devT0) || last.Outcome != RawToApp || last.Body[0] != byte(many) {
		t.Fatalf("newest entry %+v", last)
	}
	// The other app's one entry survives the first app's flood.
	if b, _ := s.RawLog(ctx, "b"); len(b) != 1 || b[0].Outcome != RawToHandler || !b[0].SentAt.IsZero() {
		t.Fatalf("b's raw log %+v", b)
	}
	var rows int
	if err := db.db.QueryRowContext(ctx, `SELECT count(*) FROM raw_log`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows > 1+RawLogPerApp+rawLogPruneEvery {
		t.Fatalf("%d rows kept, want at most %d", rows, 1+RawLogPerApp+rawLogPruneEvery)
	}
}

// TestHeartbeatProbes: what the link learned, its next upward probe and
// the day's failures round-trip per phone and network, and a corrupted
// list of failures is an error, not a crash.
func TestHeartbeatProbes(t *testing.T) {
	d := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db"))
	ctx := context.Background()
	p := d.Phone("phone-1")
	if _, err := p.Heartbeat(ctx, "home"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown network: %v", err)
	}
	// Times the fake clock makes: fractions of a second below a
	// millisecond must survive.
	at := devT0.Add(7812500 * time.Nanosecond)
	want := Heartbeat{Network: "home", Interval: 29 * time.Minute, Good: 29 * time.Minute, Bad: 30 * time.Minute, Settled: true,
		NextProbe: at.Add(4 * time.Hour), Hold: 4 * time.Hour, Rung: 2, Failed: []time.Time{at, at.Add(time.Hour)}, UpdatedAt: devT0}
	if err := p.SaveHeartbeat(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := d.Phone("phone-2").SaveHeartbeat(ctx, Heartbeat{Network: "home", Interval: time.Minute, UpdatedAt: devT0}); err != nil {
		t.Fatal(err)
	}
	got, err := p.Heartbeat(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	if !got.NextProbe.Equal(want.NextProbe) || got.Hold != want.Hold || got.Rung != want.Rung || len(got.Failed) != 2 ||
		!got.Failed[0].Equal(at) || !got.Failed[1].Equal(at.Add(time.Hour)) || got.Interval != want.Interval || !got.Settled {
		t.Fatalf("read back %+v, saved %+v", got, want)
	}
	other, err := d.Phone("phone-2").Heartbeat(ctx, "home")
	if err != nil || !other.NextProbe.IsZero() || other.Failed != nil || other.Hold != 0 {
		t.Fatalf("another phone's row: %+v, %v", other, err)
	}
	if _, err := d.db.ExecContext(ctx, `UPDATE heartbeats SET failed_ns = 'not json' WHERE phone = 'phone-1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Heartbeat(ctx, "home"); err == nil {
		t.Fatal("a corrupted list of failures was read without an error")
	}
}
