// Package cli holds the little that herald's and heraldsvc's command lines
// share: flags mixed with positional arguments, repeatable flags, and
// logging setup.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
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

// NewFlagSet returns a flag set for a subcommand whose usage line is
// usage (e.g. "herald open APP [--toast]"). Parse it with ParseCommand,
// which prints the help and the errors; the flag set itself prints nothing.
func NewFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	usages.Store(fs, usage)
	return fs
}

var usages sync.Map // *flag.FlagSet → usage line

// Usage returns the usage line NewFlagSet was given for fs.
func Usage(fs *flag.FlagSet) string {
	u, _ := usages.Load(fs)
	s, _ := u.(string)
	return s
}

// ParseCommand parses args like Parse. When it returns ok false the
// command should exit with code: 0 after -h/--help, which prints the usage
// line and every flag to stdout, and 2 after a bad flag, which prints the
// error and the usage line to stderr.
func ParseCommand(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	pos, err := Parse(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		PrintHelp(fs, stdout)
		return nil, 0, false
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\nusage: %s\n(%s --help lists the flags)\n", fs.Name(), err, Usage(fs), fs.Name())
		return nil, 2, false
	}
	return pos, 0, true
}

// PrintHelp writes fs's usage line and flags to w.
func PrintHelp(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\nflags:\n", Usage(fs))
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}
