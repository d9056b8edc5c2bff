package natsstore

import (
	"context"
	"maps"
	"path"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// follower is a bucket whose writes a quorum acknowledges at once and
// whose listings come from a replica left out of it: after a write, the
// first behind listings show what the replica held before, then it has
// caught up. Gets are answered by the quorum.
type follower struct {
	jetstream.KeyValue
	behind int
	keys   map[string][]byte // what the quorum has
	seen   map[string]bool   // what the lagging replica lists
	since  int               // listings since the last write
	lists  int
	rev    uint64
	// onList, if set, is called before each listing.
	onList func()
}

func newFollower(behind int) *follower {
	return &follower{behind: behind, keys: map[string][]byte{}, seen: map[string]bool{}}
}

func (f *follower) write(key string, v []byte) uint64 {
	f.rev++
	f.since = 0
	if v == nil {
		v = []byte{}
	}
	f.keys[key] = v
	return f.rev
}

func (f *follower) Create(_ context.Context, key string, v []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	if _, ok := f.keys[key]; ok {
		return 0, jetstream.ErrKeyExists
	}
	return f.write(key, v), nil
}

func (f *follower) Put(_ context.Context, key string, v []byte) (uint64, error) {
	return f.write(key, v), nil
}

func (f *follower) Delete(_ context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	f.rev++
	f.since = 0
	delete(f.keys, key)
	return nil
}

func (f *follower) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	v, ok := f.keys[key]
	if !ok {
		return nil, jetstream.ErrKeyNotFound
	}
	return valued{v: v, rev: f.rev}, nil
}

func (f *follower) ListKeysFiltered(_ context.Context, filters ...string) (jetstream.KeyLister, error) {
	if f.onList != nil {
		f.onList()
	}
	f.lists++
	f.since++
	if f.since > f.behind {
		f.seen = map[string]bool{}
		for k := range f.keys {
			f.seen[k] = true
		}
	}
	ch := make(chan string, len(f.seen))
	for k := range f.seen {
		if ok, _ := path.Match(filters[0], k); ok { // tokens hold no '/'
			ch <- k
		}
	}
	close(ch)
	if len(ch) == 0 {
		return nil, jetstream.ErrNoKeysFound
	}
	return lister(ch), nil
}

type lister chan string

func (l lister) Keys() <-chan string { return l }
func (l lister) Stop() error         { return nil }

type valued struct {
	jetstream.KeyValueEntry
	v   []byte
	rev uint64
}

func (e valued) Value() []byte    { return e.v }
func (e valued) Revision() uint64 { return e.rev }

func newCopy[T any]() *watched[T] {
	return newWatched[T](nil, watchOpts[T]{})
}

// A count on the node that enrolled the devices or created or deleted the
// channels reflects those writes, and so does the listing of a device's
// channels to delete, though the replica serving the listing is behind
// them. The clock is stopped, so no write of this node ever
// ages out of the record while the test runs.
func TestCountsIncludeOwnWrites(t *testing.T) {
	ctx := context.Background()
	devices, channels := newFollower(2), newFollower(2)
	s := &Store{devices: devices, channels: channels, timeout: time.Minute, devCache: newCopy[deviceRec](),
		cache: &channelCache{watched: newCopy[channelRec](), byToken: map[string]string{}}}
	s.ready.Store(true)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.own.now = func() time.Time { return t0 }

	for _, d := range []store.Device{{ID: "dev-a", Source: "192.0.2.1"}, {ID: "dev-b", Source: "192.0.2.1"}, {ID: "dev-c", Source: "203.0.113.9"}} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for src, want := range map[string]int{"192.0.2.1": 2, "203.0.113.9": 1, "198.51.100.7": 0} {
		if n, err := s.CountDevicesFromSource(ctx, src); err != nil || n != want {
			t.Fatalf("devices from %s: %d, %v; want %d", src, n, err, want)
		}
	}

	for _, c := range []store.Channel{{ID: "ch-1", DeviceID: "dev-a", App: "mail", Token: "tok-1"}, {ID: "ch-2", DeviceID: "dev-a", App: "news", Token: "tok-2"}} {
		if err := s.CreateChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	listed := channels.lists
	if n, err := s.CountChannels(ctx, "dev-a"); err != nil || n != 2 {
		t.Fatalf("channels: %d, %v; want 2", n, err)
	}
	if got := channels.lists - listed; got != channels.behind+1 {
		t.Fatalf("counted after %d listings, want %d: the replica was %d behind", got, channels.behind+1, channels.behind)
	}
	if err := s.DeleteChannel(ctx, "ch-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountChannels(ctx, "dev-a"); err != nil || n != 1 {
		t.Fatalf("channels after delete: %d, %v; want 1", n, err)
	}
	// Deleting the device's channels (retirement, expiry) deletes the one
	// created a moment ago too.
	if err := s.CreateChannel(ctx, store.Channel{ID: "ch-3", DeviceID: "dev-a", App: "chat", Token: "tok-3"}); err != nil {
		t.Fatal(err)
	}
	if err := s.deleteChannels(ctx, "dev-a"); err != nil {
		t.Fatal(err)
	}
	for k := range channels.keys {
		t.Errorf("%s left after deleting the device's channels", k)
	}
	if n, err := s.CountChannels(ctx, "dev-a"); err != nil || n != 0 {
		t.Fatalf("channels after deleting them all: %d, %v; want 0", n, err)
	}
}

// count lists once when nothing this node wrote lies under the filter,
// and otherwise again until the listing reflects it, for listTrust at
// most: a key created here and deleted by another node a moment later is
// never listed again.
func TestCountWaitsOnlyForOwnRecentWrites(t *testing.T) {
	const filter = "a.dev.*"
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// The replica lists replica for its first two listings, then
		// what the bucket holds.
		replica, bucket []string
		own             map[string]bool // key → created (or deleted) here
		ownFilter       string          // the filter own's writes were under
		age             time.Duration   // how long ago they were written
		agesOut         bool            // they reach listTrust after the first listing
		want, wantLists int
	}{
		{name: "created here", replica: []string{"a.dev.x"}, bucket: []string{"a.dev.x", "a.dev.y"},
			own: map[string]bool{"a.dev.y": true}, want: 2, wantLists: 3},
		{name: "the device's first, created here", bucket: []string{"a.dev.y"},
			own: map[string]bool{"a.dev.y": true}, want: 1, wantLists: 3},
		{name: "deleted here", replica: []string{"a.dev.x", "a.dev.y"}, bucket: []string{"a.dev.x"},
			own: map[string]bool{"a.dev.y": false}, want: 1, wantLists: 3},
		{name: "created by another node", replica: []string{"a.dev.x"}, bucket: []string{"a.dev.x", "a.dev.y"},
			want: 1, wantLists: 1},
		{name: "created here for another device", replica: []string{"a.dev.x"}, bucket: []string{"a.dev.x", "a.dev.y"},
			own: map[string]bool{"a.other.y": true}, ownFilter: "a.other.*", want: 1, wantLists: 1},
		{name: "created here long ago, deleted elsewhere", replica: []string{"a.dev.x"}, bucket: []string{"a.dev.x"},
			own: map[string]bool{"a.dev.y": true}, age: listTrust, want: 1, wantLists: 1},
		{name: "created here a moment ago, deleted elsewhere", replica: []string{"a.dev.x"}, bucket: []string{"a.dev.x"},
			own: map[string]bool{"a.dev.y": true}, age: listTrust - time.Millisecond, agesOut: true, want: 1, wantLists: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			own := &ownKeys{now: func() time.Time { return now }}
			f := tc.ownFilter
			if f == "" {
				f = filter
			}
			for k, put := range tc.own {
				own.wrote(f, k, put)
			}
			now = t0.Add(tc.age)
			kv := newFollower(2)
			for _, k := range tc.bucket {
				kv.write(k, nil)
			}
			for _, k := range tc.replica {
				kv.seen[k] = true
			}
			if tc.agesOut {
				kv.onList = func() {
					if kv.lists == 1 {
						now = t0.Add(listTrust)
					}
				}
			}
			n, err := count(context.Background(), kv, filter, own)
			if err != nil || n != tc.want {
				t.Fatalf("count %d, %v; want %d", n, err, tc.want)
			}
			if kv.lists != tc.wantLists {
				t.Fatalf("%d listings, want %d", kv.lists, tc.wantLists)
			}
		})
	}
}

// A count waiting for a replica that never catches up gives the last
// listing's count when its context ends.
func TestCountEndsWithContext(t *testing.T) {
	own := &ownKeys{}
	own.wrote("a.dev.*", "a.dev.y", true)
	kv := newFollower(1 << 30)
	kv.write("a.dev.y", nil)
	ctx, cancel := context.WithCancel(context.Background())
	kv.onList = func() {
		if kv.lists == 3 {
			cancel()
		}
	}
	if n, err := count(ctx, kv, "a.dev.*", own); err != nil || n != 0 {
		t.Fatalf("count %d, %v; want the last listing's 0", n, err)
	}
	if kv.lists != 4 {
		t.Fatalf("%d listings, want 4", kv.lists)
	}
}

// The record keeps this node's writes for listTrust, however often a
// listing has shown them (the next may come from a replica still behind),
// and forgets them after, including those of filters no count asked for.
func TestOwnKeysForgetAfterListTrust(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	own := &ownKeys{now: func() time.Time { return now }}
	own.wrote("a.dev.*", "a.dev.y", true)
	own.wrote("s.src.*", "s.src.dev", true)
	if own.misses("a.dev.*", map[string]bool{"a.dev.y": true}) {
		t.Fatal("a listing with the key misses it")
	}
	if !own.misses("a.dev.*", map[string]bool{}) {
		t.Fatal("a listing after one that showed the key, from a replica behind, was taken")
	}
	now = now.Add(listTrust)
	own.wrote("a.other.*", "a.other.z", false)
	if want := map[string]map[string]ownWrite{"a.other.*": {"a.other.z": {put: false, at: now}}}; !maps.EqualFunc(own.byFilter, want,
		func(a, b map[string]ownWrite) bool { return maps.Equal(a, b) }) {
		t.Fatalf("record after listTrust: %v, want only the last write", own.byFilter)
	}
}
