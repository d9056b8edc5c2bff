package server

import (
	"strings"
	"testing"
)

// A message resource's path splits back into exactly what it was made of,
// and an id that comes out is one the store and a header can hold.
func FuzzMessagePath(f *testing.F) {
	for _, p := range []string{
		"/throttledthirdparty/01.00/tok/messages/5f1c0a3e-7a43",
		"/throttledthirdparty/01.00/tok/messages/",
		"/throttledthirdparty/01.00/tok/messages/a/messages/b",
		"/messages/x",
		"/throttledthirdparty/01.00/tok/messages/a b",
		"/throttledthirdparty/01.00/tok/messages/\x00",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		channelPath, id, ok := messagePath(p)
		if !ok {
			return
		}
		if channelPath+MessagesSegment+id != p {
			t.Fatalf("%q split into %q and %q", p, channelPath, id)
		}
		if !validMessageID(id) || strings.Contains(id, "/") || len(id) > 64 {
			t.Fatalf("%q gave the id %q", p, id)
		}
		for i := 0; i < len(id); i++ {
			if id[i] <= ' ' || id[i] > '~' {
				t.Fatalf("%q gave an id with byte %#x", p, id[i])
			}
		}
	})
}
