package store_test

import (
	"testing"

	"github.com/heraldpush/herald/server/store"
)

// TestTokenCache: a channel put is found by its token as a copy the caller
// cannot change the cache through; a drop by id forgets it; a fill read
// before a drop is not kept (it may hold what the drop undid); a full
// cache keeps what it has and takes nothing more.
func TestTokenCache(t *testing.T) {
	ch := store.Channel{ID: "c1", DeviceID: "d", App: "a", Token: "tok1", Domains: []string{"x.example"}}
	t.Run("put, get a copy, drop", func(t *testing.T) {
		c := store.NewTokenCache(10)
		c.Put(c.Generation(), ch)
		got, ok := c.Get("tok1")
		if !ok || got.ID != "c1" {
			t.Fatalf("Get after Put: %+v %v", got, ok)
		}
		got.Domains[0] = "changed"
		if again, _ := c.Get("tok1"); again.Domains[0] != "x.example" {
			t.Fatalf("a caller changed the cache through a slice: %v", again.Domains)
		}
		c.Drop("c1")
		if _, ok := c.Get("tok1"); ok {
			t.Fatal("found after Drop")
		}
	})
	t.Run("a fill read before a drop is not kept", func(t *testing.T) {
		c := store.NewTokenCache(10)
		gen := c.Generation() // the read of the database begins
		c.Drop("c1")          // a rotation commits meanwhile
		c.Put(gen, ch)        // the read's now stale result
		if _, ok := c.Get("tok1"); ok {
			t.Fatal("a stale fill was kept")
		}
	})
	t.Run("full", func(t *testing.T) {
		c := store.NewTokenCache(1)
		c.Put(c.Generation(), ch)
		c.Put(c.Generation(), store.Channel{ID: "c2", Token: "tok2"})
		if _, ok := c.Get("tok2"); ok {
			t.Fatal("a full cache took another channel")
		}
		if _, ok := c.Get("tok1"); !ok {
			t.Fatal("a full cache lost what it had")
		}
	})
}
