package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/platform"
)

// EnvConfig names serve's configuration file when --config is not given.
const EnvConfig = "HERALDSVC_CONFIG"

// configUsage is `heraldsvc config`'s usage line.
const configUsage = "heraldsvc config [serve flags]   print the effective configuration of heraldsvc serve as a file that loads back unchanged"

// commandUsage is the usage line of serve or config, as NewFlagSet wants it.
func commandUsage(cmd string) string {
	if cmd == "config" {
		return configUsage
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.SplitN(usage, "\n  heraldsvc config", 2)[0], "usage:\n  "))
}

// parseServe parses the command line of `heraldsvc serve` or `heraldsvc
// config` (fs, with every serve flag registered) and applies the
// configuration file named by --config, else by HERALDSVC_CONFIG. Each
// flag is a key of the file, its name with '_' for '-' (--queue-depth is
// queue_depth); a flag given on the command line wins over the file, the
// file over the flag's default. Values are checked wherever they come
// from, and a bad one is named by its flag or by file:line and key. When
// ok is false the command exits with code; `heraldsvc config` prints the
// configuration and exits 0 here.
func parseServe(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	configFile := fs.String("config", "", "configuration file (TOML): each flag is a key, e.g. queue_depth = 100; flags win over it (default $"+EnvConfig+")")
	pos, code, ok = cli.ParseCommand(fs, args, stdout, stderr)
	if !ok {
		return nil, code, false
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), pos[0])
		return nil, 2, false
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	path := *configFile
	if !set["config"] {
		path = os.Getenv(EnvConfig)
	}
	if err := applyConfigFile(fs, path, set); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	if fs.Name() == "heraldsvc config" {
		if err := printServeConfig(stdout, fs, path); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			return nil, 1, false
		}
		return nil, 0, false
	}
	return nil, 0, true
}

// configKey is the file's key of a flag.
func configKey(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

var keyPattern = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)

// serveFlag returns the flag whose key is key, or nil.
func serveFlag(fs *flag.FlagSet, key string) *flag.Flag {
	if !keyPattern.MatchString(key) || key == "config" {
		return nil
	}
	return fs.Lookup(strings.ReplaceAll(key, "_", "-"))
}

// applyConfigFile sets the flags not in set from the file at path ("" for
// none), then checks every flag's value.
func applyConfigFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	var f *platform.ConfigFile
	fromFile := map[string]bool{}
	if path != "" {
		// A file named explicitly must exist: a mistyped path should not
		// start a service on the defaults.
		data, err := platform.ReadConfigFile(path)
		if err != nil {
			return err
		}
		var m map[string]any
		if f, err = platform.DecodeConfigFile(path, data, &m); err != nil {
			return err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		// In the file's order, so the errors read top to bottom.
		slices.SortFunc(keys, func(a, b string) int {
			if la, lb := f.Line(a), f.Line(b); la != lb {
				return la - lb
			}
			return strings.Compare(a, b)
		})
		for _, k := range keys {
			fl := serveFlag(fs, k)
			if fl == nil {
				name := fmt.Sprintf("%q", k)
				if alt := configKey(strings.ToLower(k)); alt != k && serveFlag(fs, alt) != nil {
					name += " (the key of --" + strings.ToLower(k) + " is " + alt + ")"
				}
				f.Unknown(name, k)
				continue
			}
			s, err := flagText(fl, m[k])
			if err != nil {
				f.Invalid(fmt.Sprintf("%s: %v", k, err), k)
				continue
			}
			// Checked even when a flag overrides it: the file is wrong
			// and will be used without that flag one day.
			v, err := parseAs(fl, s)
			if err != nil {
				f.Invalid(fmt.Sprintf("%s %s: %v", k, s, err), k)
				continue
			}
			if check := serveChecks[fl.Name]; check != nil {
				if want := check(v); want != "" {
					f.Invalid(fmt.Sprintf("%s %s: must be %s", k, formatValue(v), want), k)
					continue
				}
			}
			if set[fl.Name] {
				continue // the command line wins
			}
			if err := fl.Value.Set(s); err != nil {
				f.Invalid(fmt.Sprintf("%s %s: %v", k, s, err), k)
				continue
			}
			fromFile[fl.Name] = true
		}
	}
	var flagErrs []error
	fs.VisitAll(func(fl *flag.Flag) {
		check := serveChecks[fl.Name]
		if check == nil || fromFile[fl.Name] {
			return
		}
		if want := check(flagValue(fl)); want != "" {
			flagErrs = append(flagErrs, fmt.Errorf("--%s %s: must be %s", fl.Name, fl.Value, want))
		}
	})
	if f != nil {
		if err := f.Err(); err != nil {
			flagErrs = append(flagErrs, err)
		}
	}
	return errors.Join(flagErrs...)
}

// flagText converts a TOML value to the text the flag parses, refusing a
// value of the wrong type: an integer flag takes a TOML integer, a float
// flag an integer or a float, a boolean flag true or false, a duration
// flag a string such as "30s" (as herald's durations are written), and any
// other flag a string.
func flagText(fl *flag.Flag, v any) (string, error) {
	switch flagValue(fl).(type) {
	case bool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
		return "", fmt.Errorf("want true or false, not %s", tomlType(v))
	case int:
		if n, ok := v.(int64); ok {
			if n < math.MinInt || n > math.MaxInt {
				return "", fmt.Errorf("%d is out of range", n)
			}
			return strconv.FormatInt(n, 10), nil
		}
		return "", fmt.Errorf("want an integer, not %s", tomlType(v))
	case float64:
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10), nil
		case float64:
			return strconv.FormatFloat(n, 'g', -1, 64), nil
		}
		return "", fmt.Errorf("want a number, not %s", tomlType(v))
	case time.Duration:
		if s, ok := v.(string); ok {
			if _, err := time.ParseDuration(s); err != nil {
				return "", fmt.Errorf("%q: want a duration such as \"30s\" or \"72h\"", s)
			}
			return s, nil
		}
		return "", fmt.Errorf("want a duration such as \"30s\", not %s", tomlType(v))
	default:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return "", fmt.Errorf("want a string, not %s", tomlType(v))
	}
}

// parseAs parses s, a flag's text, as the flag's type, without setting
// the flag.
func parseAs(fl *flag.Flag, s string) (any, error) {
	switch flagValue(fl).(type) {
	case bool:
		return strconv.ParseBool(s)
	case int:
		n, err := strconv.ParseInt(s, 10, strconv.IntSize)
		return int(n), err
	case float64:
		return strconv.ParseFloat(s, 64)
	case time.Duration:
		return time.ParseDuration(s)
	}
	return s, nil
}

// formatValue writes a value as its flag would.
func formatValue(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// tomlType names the type of a decoded TOML value for an error.
func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the float %g", v)
	case bool:
		return fmt.Sprintf("%t", v)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

// flagValue is a flag's value as its type: bool, int, float64,
// time.Duration or string (for a flag of any other type, its text).
func flagValue(fl *flag.Flag) any {
	if g, ok := fl.Value.(flag.Getter); ok {
		switch v := g.Get().(type) {
		case bool, int, float64, time.Duration, string:
			return v
		}
	}
	return fl.Value.String()
}

// printServeConfig writes every serve flag as a key with its value, each
// under its flag's help, as a file that loads back unchanged.
func printServeConfig(w io.Writer, fs *flag.FlagSet, path string) error {
	var b bytes.Buffer
	if path == "" {
		path = "none"
	}
	fmt.Fprintf(&b, "# effective configuration of heraldsvc serve (file: %s)\n", path)
	var err error
	fs.VisitAll(func(fl *flag.Flag) {
		if fl.Name == "config" || err != nil {
			return
		}
		v := flagValue(fl)
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		fmt.Fprintf(&b, "\n# --%s: %s\n", fl.Name, strings.ReplaceAll(fl.Usage, "\n", " "))
		err = toml.NewEncoder(&b).Encode(map[string]any{configKey(fl.Name): v})
	})
	if err != nil {
		return fmt.Errorf("effective configuration: %w", err)
	}
	_, err = w.Write(b.Bytes())
	return err
}

// serveChecks hold the values each flag may take, from the command line or
// the file; a check returns what the value must be, or "" for a good
// value. Values
// past these either mean nothing (a negative burst admits nothing) or
// break the service (a negative --max-in-flight cannot size its slots).
var serveChecks = map[string]func(v any) string{
	"listen":                        hostPort(false),
	"tls-listen":                    hostPort(true),
	"debug-listen":                  hostPort(true),
	"public-url":                    absURL,
	"auth-url":                      absURL,
	"log-level":                     logLevel,
	"inactive-after":                nonNegative,
	"forget-devices-after":          nonNegative,
	"slow-store":                    nonNegative,
	"read-header-timeout":           nonNegative,
	"read-timeout":                  nonNegative,
	"queue-depth":                   intIn(0, 1_000_000, "0 for the default"),
	"daily-quota":                   intIn(-1, 1_000_000_000, "-1 for none, 0 for the default"),
	"channel-rate":                  rate,
	"sender-rate":                   rate,
	"channel-burst":                 intIn(0, 1_000_000, "0 for the default"),
	"sender-burst":                  intIn(0, 1_000_000, "0 for the default"),
	"max-in-flight":                 intIn(0, 1<<20, "0 for the default"),
	"max-body-reads-per-source":     intIn(-1, 1<<20, "-1 for no limit, 0 for the default"),
	"max-body":                      intIn(1, mpns.MaxBodySize, ""),
	"max-header":                    intIn(0, 1<<20, "0 for the default"),
	"max-multicast":                 intIn(0, 100_000, "0 for the default"),
	"max-devices-per-source":        intIn(0, 1_000_000_000, "0 for the default"),
	"max-pending-hellos-per-source": intIn(-1, 1<<20, "-1 for no limit, 0 for the default"),
	"max-pending-hellos":            intIn(-1, 1<<24, "-1 for only the quarter of the descriptor limit, 0 for the default"),
	"store-replicas":                storeReplicas,
}

func intIn(lo, hi int, note string) func(any) string {
	return func(v any) string {
		if n, ok := v.(int); ok && n >= lo && n <= hi {
			return ""
		}
		if note != "" {
			return fmt.Sprintf("%d-%d, %s", lo, hi, note)
		}
		return fmt.Sprintf("%d-%d", lo, hi)
	}
}

// storeReplicas words it as natsFlags.check does.
func storeReplicas(v any) string {
	if intIn(0, 5, "")(v) == "" {
		return ""
	}
	return "1-5, or 0 for the default"
}

func nonNegative(v any) string {
	if d, ok := v.(time.Duration); ok && d >= 0 {
		return ""
	}
	return "a duration of 0 or more"
}

func rate(v any) string {
	if r, ok := v.(float64); ok && (r == -1 || r >= 0 && r <= 1e6) {
		return ""
	}
	return "0-1000000 per second, -1 for no limit, 0 for the default"
}

func hostPort(optional bool) func(any) string {
	return func(v any) string {
		s, _ := v.(string)
		if s == "" && optional {
			return ""
		}
		if _, port, err := net.SplitHostPort(s); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n >= 0 && n <= 65535 {
				return ""
			}
		}
		return "host:port such as 127.0.0.1:8790"
	}
}

func absURL(v any) string {
	s, _ := v.(string)
	if s == "" {
		return ""
	}
	if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return ""
	}
	return "an absolute http or https URL such as https://push.example.net"
}

func logLevel(v any) string {
	var l slog.Level
	if s, _ := v.(string); l.UnmarshalText([]byte(s)) == nil {
		return ""
	}
	return "debug, info, warn or error"
}
