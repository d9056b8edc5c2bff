package platform

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// The shape of a configuration file, bounded before the TOML decoder sees
// it: the decoder's time grows with the square of a key's depth and of the
// nesting of inline tables (a file of ten thousand nested tables takes it
// many seconds), and a configuration needs neither. Every Herald
// configuration file fits well inside these.
const (
	// MaxConfigSize bounds a configuration file; a longer one is refused
	// unread.
	MaxConfigSize = 256 << 10
	// MaxConfigNesting bounds how deeply arrays, inline tables and table
	// headers nest.
	MaxConfigNesting = 8
	// MaxConfigDots bounds the dots on one line outside strings and
	// comments, and so the depth of a dotted key.
	MaxConfigDots = 16
)

// ErrConfigShape is returned for a configuration file beyond MaxConfigSize,
// MaxConfigNesting or MaxConfigDots.
var ErrConfigShape = errors.New("configuration file too large or too deeply nested")

// ReadConfigFile reads the configuration file at path, refusing one longer
// than MaxConfigSize (a device file such as /dev/zero too) with
// ErrConfigShape. A missing file is an error satisfying
// errors.Is(err, fs.ErrNotExist).
func ReadConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("load config %s: %w: more than %d bytes", path, ErrConfigShape, MaxConfigSize)
	}
	return data, nil
}

// ConfigFile is a decoded configuration file: its keys' lines, and the
// problems found so far, each naming path:line and the key. Herald's and
// heraldsvc's configurations are both read through it, so their files
// follow the same rules and their errors read the same.
type ConfigFile struct {
	Path  string
	Meta  toml.MetaData
	lines keyLines
	errs  []error
}

// DecodeConfigFile decodes data, the configuration file at path, into v (a
// struct with toml tags, or a map). A syntax error, a duplicate key or a
// file beyond the bounds above is returned at once; keys v has no place for
// are recorded as ErrUnknownKey, each once (a misspelt table once, not once
// per key inside it). The caller adds its own checks with Invalid and ends
// with Err.
func DecodeConfigFile(path string, data []byte, v any) (*ConfigFile, error) {
	if err := checkConfigShape(data); err != nil {
		return nil, fmt.Errorf("load config %s:%w", path, err)
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	f := &ConfigFile{Path: path, Meta: md, lines: newKeyLines(data)}
	for _, k := range topUndecoded(md.Undecoded()) {
		f.Unknown(k.String(), k...)
	}
	return f, nil
}

// Unknown records key (its parts) as unknown; name is how the error names
// it, with what may help, e.g. `"tls-listen" (did you mean tls_listen?)`.
func (f *ConfigFile) Unknown(name string, key ...string) {
	if !strings.HasPrefix(name, `"`) {
		name = fmt.Sprintf("%q", name)
	}
	f.errs = append(f.errs, fmt.Errorf("%s: %w %s", f.Where(key...), ErrUnknownKey, name))
}

// Invalid records that key's value cannot be used, and why (msg names the
// key).
func (f *ConfigFile) Invalid(msg string, key ...string) {
	f.errs = append(f.errs, fmt.Errorf("%s: %w: %s", f.Where(key...), ErrInvalidConfig, msg))
}

// Where returns "path:line" for key, or for its nearest enclosing key that
// has a line, or just the path.
func (f *ConfigFile) Where(key ...string) string { return f.lines.where(f.Path, key) }

// Line returns key's line, or 0 when it is not written in the file.
func (f *ConfigFile) Line(key ...string) int { return f.lines[toml.Key(key).String()] }

// Err returns every problem recorded, joined, or nil.
func (f *ConfigFile) Err() error {
	if len(f.errs) == 0 {
		return nil
	}
	return fmt.Errorf("load config: %w", errors.Join(f.errs...))
}

// topUndecoded drops keys whose parent table is itself unknown, so a
// misspelt table is reported once rather than once per key inside it. The
// decoder lists a table before its keys.
func topUndecoded(keys []toml.Key) []toml.Key {
	var out []toml.Key
	seen := map[string]bool{}
	for _, k := range keys {
		if !parentSeen(seen, k) {
			out = append(out, k)
			seen[k.String()] = true
		}
	}
	return out
}

func parentSeen(seen map[string]bool, k toml.Key) bool {
	for i := 1; i < len(k); i++ {
		if seen[k[:i].String()] {
			return true
		}
	}
	return false
}

// checkConfigShape refuses a file nested deeper than MaxConfigNesting or
// with more than MaxConfigDots dots on a line, outside strings and
// comments. It only counts; what the counts leave through, the decoder
// judges.
func checkConfigShape(data []byte) error {
	line, depth, dots := 1, 0, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line, dots = line+1, 0
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			end, nl := skipString(data, i)
			line, i = line+nl, end
		case '[', '{':
			if depth++; depth > MaxConfigNesting {
				return fmt.Errorf("%d: %w: nested more than %d deep", line, ErrConfigShape, MaxConfigNesting)
			}
		case ']', '}':
			depth = max(depth-1, 0)
		case '.':
			if dots++; dots > MaxConfigDots {
				return fmt.Errorf("%d: %w: more than %d dots on a line", line, ErrConfigShape, MaxConfigDots)
			}
		}
	}
	return nil
}

// skipString returns the index of the last byte of the string that opens
// at data[i] (basic, literal, or either multi-line kind) and the newlines
// it spans. An unterminated string runs to the end of its line (or of the
// file, for a multi-line one); the decoder reports it.
func skipString(data []byte, i int) (end, newlines int) {
	q := data[i]
	delim := []byte{q}
	if bytes.HasPrefix(data[i:], []byte{q, q, q}) {
		delim = []byte{q, q, q}
	}
	j := i + len(delim)
	for ; j < len(data); j++ {
		switch {
		case data[j] == '\\' && q == '"':
			if j+1 < len(data) && data[j+1] == '\n' {
				newlines++
			}
			j++
		case data[j] == '\n':
			if len(delim) == 1 {
				return j - 1, newlines
			}
			newlines++
		case bytes.HasPrefix(data[j:], delim):
			j += len(delim) - 1
			// A multi-line string may end in one or two quotes of its own.
			for k := 0; len(delim) == 3 && k < 2 && j+1 < len(data) && data[j+1] == q; k++ {
				j++
			}
			return j, newlines
		}
	}
	return len(data) - 1, newlines
}

// keyLines maps each key written in a TOML document to its line, for error
// messages. The decoder knows these positions but does not export them; this
// small scanner understands table headers, dotted and quoted keys and
// skips multi-line strings, which is all a configuration file needs. A key
// inside an inline table is attributed to the line of the table.
type keyLines map[string]int

func newKeyLines(data []byte) keyLines {
	kl := keyLines{}
	var table []string
	inMulti := "" // the delimiter of the multi-line string being skipped
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			hdr := strings.TrimPrefix(strings.TrimPrefix(line, "["), "[")
			end := strings.Index(hdr, "]")
			if end < 0 {
				continue
			}
			if k, ok := splitKey(hdr[:end]); ok {
				table = k
				kl.add(table, n)
			}
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			continue
		}
		k, ok := splitKey(line[:eq])
		if !ok {
			continue
		}
		kl.add(append(slices.Clone(table), k...), n)
		for _, d := range []string{`"""`, `'''`} {
			if strings.Count(line[eq:], d)%2 == 1 {
				inMulti = d
			}
		}
	}
	return kl
}

func (kl keyLines) add(k []string, line int) {
	s := toml.Key(k).String()
	if _, ok := kl[s]; !ok {
		kl[s] = line
	}
}

// where returns "path:line" for key, or for its nearest enclosing key that
// has a line, or just path.
func (kl keyLines) where(path string, key []string) string {
	for i := len(key); i > 0; i-- {
		if n, ok := kl[toml.Key(key[:i]).String()]; ok {
			return fmt.Sprintf("%s:%d", path, n)
		}
	}
	return path
}

// keyEnd returns the index of the '=' that ends the key at the start of
// line, ignoring '=' inside quoted key parts, or -1.
func keyEnd(line string) int {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted TOML key such as `a."b.c".d` into its parts.
func splitKey(s string) ([]string, bool) {
	var parts []string
	s = strings.TrimSpace(s)
	for s != "" {
		var part string
		if q := s[0]; q == '"' || q == '\'' {
			end := closingQuote(s, q)
			if end < 0 {
				return nil, false
			}
			part = s[1:end]
			if q == '"' {
				uq, err := unquoteBasic(s[:end+1])
				if err != nil {
					return nil, false
				}
				part = uq
			}
			s = s[end+1:]
		} else {
			end := strings.IndexAny(s, ". \t")
			if end < 0 {
				end = len(s)
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return parts, len(parts) > 0
}

// closingQuote returns the index of the quote closing the string that opens
// at s[0], honouring backslash escapes in basic strings, or -1.
func closingQuote(s string, q byte) int {
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

// unquoteBasic decodes a TOML basic string key, which uses the same escapes
// as TOML basic strings.
func unquoteBasic(s string) (string, error) {
	var v struct{ K string }
	if _, err := toml.Decode("K = "+s, &v); err != nil {
		return "", err
	}
	return v.K, nil
}
