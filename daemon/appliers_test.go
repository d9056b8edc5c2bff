package daemon

import (
	"testing"

	"github.com/heraldpush/herald/mpns"
)

// Every kind mpns defines has an applier, and there is none for a kind it
// does not define.
func TestAppliersCoverEveryKind(t *testing.T) {
	for _, s := range mpns.Kinds() {
		if appliers[s.Kind] == nil {
			t.Errorf("no applier for %s", s.Kind)
		}
	}
	for k := range appliers {
		if !k.Valid() {
			t.Errorf("applier for %q, which mpns does not define", k)
		}
	}
}
