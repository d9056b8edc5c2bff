package channel

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The first URL stays first; the rest come in each link's own order, so
// that a failed first node's devices spread over all the others.
func TestSpreadKeepsTheFirstAndShufflesTheRest(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2)).Float64
	nextAfterFirst := map[string]int{}
	for range 3000 {
		urls := []string{"a", "b", "c", "d"}
		spread(urls, rnd)
		if urls[0] != "a" {
			t.Fatalf("first URL moved: %v", urls)
		}
		rest := slices.Clone(urls[1:])
		slices.Sort(rest)
		if !slices.Equal(rest, []string{"b", "c", "d"}) {
			t.Fatalf("not a permutation of the rest: %v", urls)
		}
		nextAfterFirst[urls[1]]++
	}
	for _, u := range []string{"b", "c", "d"} {
		// A third each; far from it means the devices would pile up.
		if n := nextAfterFirst[u]; n < 800 || n > 1200 {
			t.Fatalf("%s came after the first in %d of 3000 links: %v", u, n, nextAfterFirst)
		}
	}
	// One or two URLs: nothing to spread; a Rand of 1.0 stays in range.
	for _, urls := range [][]string{{"a"}, {"a", "b"}} {
		want := slices.Clone(urls)
		spread(urls, func() float64 { return 0.9999999 })
		if !slices.Equal(urls, want) {
			t.Fatalf("spread(%v) = %v", want, urls)
		}
	}
}
