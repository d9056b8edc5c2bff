// Package cli holds the little that herald's and heraldsvc's command lines
// share: flags mixed with positional arguments, repeatable flags, and
// logging setup.
package cli

import (
	"flag"
	"io"
	"log/slog"
	"strings"
)

// Parse parses args with fs, allowing flags after positional arguments
// ("herald open APP --toast"), and returns the positional arguments.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Strings is a repeatable string flag.
type Strings []string

func (s *Strings) String() string     { return strings.Join(*s, ",") }
func (s *Strings) Set(v string) error { *s = append(*s, v); return nil }

// Logger returns a text logger on w at level.
func Logger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
