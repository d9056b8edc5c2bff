package platform

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Files the decoder would choke on or take minutes over are refused before
// it sees them, with their line; files of the same keys within the bounds
// still load.
func TestConfigFileAttacks(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) }
	tests := []struct {
		name    string
		body    string
		wantErr error
		want    []string
	}{
		{"nested inline tables", "display = \"log\"\nx = " + deep(50000) + "\n", ErrConfigShape, []string{":2: ", "nested more than 8"}},
		{"nested arrays", "x = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n", ErrConfigShape, []string{":1: "}},
		{"deep dotted key", "\n\n" + strings.Repeat("a.", 100000) + "b = 1\n", ErrConfigShape, []string{":3: ", "more than 16 dots"}},
		{"deep table header", "[" + strings.Repeat("a.", 100000) + "b]\n", ErrConfigShape, []string{":1: "}},
		{"duplicate key", "display = \"log\"\n\ndisplay = \"dbus\"\n", nil, []string{"line 3", "already been defined"}},
		{"duplicate table", "[handlers.a]\ncommand = [\"x\"]\n[handlers.a]\ncommand = [\"y\"]\n", nil, []string{"line 3"}},
		{"integer out of range", "toasts_kept = 99999999999999999999\n", nil, []string{"line 1", "out of range"}},
		{"within range but too many", "events_kept = 9223372036854775807\n", ErrInvalidConfig, []string{":1: ", "events_kept 9223372036854775807"}},
		{"NUL byte", "display = \"log\x00\"\n", nil, []string{"line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("LoadConfig succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %.300q lacks %q", err, w)
				}
			}
		})
	}
}

// What the shape check counts is outside strings and comments only, so
// dots and brackets inside them do not count against the bounds.
func TestConfigShapeIgnoresStrings(t *testing.T) {
	dots := strings.Repeat(".", 100)
	brackets := strings.Repeat("[{", 100)
	body := "# " + dots + brackets + "\n" +
		"socket_group = \"a" + dots + "b\\\"" + brackets + "\"\n" +
		"service_ca = '" + dots + brackets + "'\n" +
		"data = \"\"\"\n" + dots + "\n" + brackets + "\"\"\"\"\n" +
		"socket = '''" + dots + "\n'''\n" +
		"\nlog_levl = 1\n" +
		"[handlers.\"com.example." + dots + "\"]\ncommand = [\"" + brackets + "\"]\n"
	_, err := LoadConfig(writeConfig(t, body))
	if errors.Is(err, ErrConfigShape) || errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), ":10: unknown key \"log_levl\"") {
		t.Fatalf("LoadConfig = %v; want only the unknown key on line 10", err)
	}
	for _, ok := range []string{
		"[" + strings.Repeat("a.", MaxConfigDots) + "b]\ncommand = [\"x\"]\n",
		"x = " + strings.Repeat("[", MaxConfigNesting) + strings.Repeat("]", MaxConfigNesting) + "\n",
	} {
		if err := checkConfigShape([]byte(ok)); err != nil {
			t.Errorf("checkConfigShape(%.60q) = %v; at the bounds is allowed", ok, err)
		}
	}
}

func TestReadConfigFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), MaxConfigSize/10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); !errors.Is(err, ErrConfigShape) || !strings.Contains(err.Error(), big) {
		t.Errorf("LoadConfig of a %d-byte file = %v, want %v naming it", MaxConfigSize+10, err, ErrConfigShape)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := ReadConfigFile("/dev/zero"); !errors.Is(err, ErrConfigShape) {
			t.Errorf("ReadConfigFile(/dev/zero) = %v, want %v", err, ErrConfigShape)
		}
	}
	if _, err := ReadConfigFile(filepath.Join(dir, "missing.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadConfigFile of a missing file = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadConfig(dir); err == nil {
		t.Error("LoadConfig of a directory succeeded")
	}
}

// BenchmarkConfigWorstShape decodes the slowest file the bounds let
// through: a megabyte of keys at the greatest depth, and of inline tables
// nested as deep as allowed.
func BenchmarkConfigWorstShape(b *testing.B) {
	key := strings.Repeat("a.", MaxConfigDots-1) + "k"
	var keys bytes.Buffer
	for i := 0; keys.Len() < MaxConfigSize-200; i++ {
		keys.WriteString(key + strings.Repeat("x", 1+i%7) + strconv.Itoa(i) + " = 1\n")
	}
	nest := strings.Repeat("{a=", MaxConfigNesting-1) + "1" + strings.Repeat("}", MaxConfigNesting-1)
	var tables bytes.Buffer
	for i := 0; tables.Len() < MaxConfigSize-200; i++ {
		tables.WriteString("k" + strconv.Itoa(i) + " = " + nest + "\n")
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"dotted", keys.Bytes()}, {"nested", tables.Bytes()}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				var m map[string]any
				if _, err := DecodeConfigFile("worst.toml", c.data, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
