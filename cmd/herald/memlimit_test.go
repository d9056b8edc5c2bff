package main

import "testing"

func TestMemoryLimit(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	goEnv := func(k string) (string, bool) { return "64MiB", k == "GOMEMLIMIT" }
	cases := []struct {
		flag    string
		env     func(string) (string, bool)
		want    int64
		wantErr bool
	}{
		{"", noEnv, DefaultMemoryLimit, false},
		{"", goEnv, 0, false}, // the runtime already applied GOMEMLIMIT
		{"off", noEnv, 0, false},
		{"16MiB", goEnv, 16 << 20, false},
		{"512KiB", noEnv, 512 << 10, false},
		{"1GiB", noEnv, 1 << 30, false},
		{"12582912", noEnv, 12582912, false},
		{"0", noEnv, 0, true},
		{"-5MiB", noEnv, 0, true},
		{"16MB", noEnv, 0, true},
		{"lots", noEnv, 0, true},
		{"9999999999GiB", noEnv, 0, true},
	}
	for _, c := range cases {
		got, err := memoryLimit(c.flag, c.env)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("memoryLimit(%q) = %d, %v; want %d, error %v", c.flag, got, err, c.want, c.wantErr)
		}
	}
}
