package platform

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParseConfig: any file is loaded or refused with an error, never a
// panic; a file that loads, with the defaults applied and printed again
// (what `herald config` does), loads back to the same configuration.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"service = \"http://127.0.0.1:8080\"\nlisten = \"127.0.0.1:0\"\nui = \"127.0.0.1:8791\"\n",
		"memory_limit = \"16MiB\"\ntoasts_kept = 10\ntoasts_max_age = \"1h\"\nevents_kept = 7\nevents_max_age = \"30m\"\n",
		"[handlers.demo]\ncommand = [\"/bin/true\"]\ntimeout = \"5s\"\n[handlers.\"com.example.chat\"]\ncommand = [\"x\", \"y z\"]\n",
		"power = \"low\"\ndisplay = \"log\"\nlog_level = \"warn\"\nsocket_group = \"0\"\n",
		"toasts_kept = -1\n",
		"memory_limit = \"off\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig("fuzz.toml", data)
		if err != nil {
			return
		}
		c.ApplyDefaults(Paths{DataDir: "/d", Socket: "/s"})
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(c); err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		again, err := parseConfig("printed.toml", b.Bytes())
		if err != nil {
			t.Fatalf("printed configuration does not load: %v\n%s", err, b.String())
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("loaded back differs:\n%+v\n%+v\n%s", again, c, b.String())
		}
	})
}

// FuzzParseSize: a size is refused or formats back to itself.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10MiB", "off", "512KiB", "1GiB", "12582912", "0", "-5MiB", "9999999999GiB", " 3MiB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	})
}
