package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCPUPIDsRefused: --cpu-pids takes process ids of running processes
// only, and says which one it refuses before connecting anything.
func TestCPUPIDsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, pids, want string
	}{
		{"not a number", "1,abc", `"abc" is not a process id`},
		{"zero", "0", `"0" is not a process id`},
		{"negative", "-4", `"-4" is not a process id`},
		{"empty field", "1,,2", `"" is not a process id`},
		{"no such process", "2147483646", "process 2147483646"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run([]string{"--service", "http://127.0.0.1:1", "--cpu-pids", tc.pids}, &out, &errOut); code != 1 {
				t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), "--cpu-pids: "+tc.want) {
				t.Fatalf("stderr %q, want it to name %q", errOut.String(), tc.want)
			}
		})
	}
}

// TestJetStreamFloorFlags: flags the JetStream floor would ignore (it runs
// no service and no devices) are refused with it, and its own flags
// without it, before anything is connected.
func TestJetStreamFloorFlags(t *testing.T) {
	const floor = "nats://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a service", []string{"--jetstream-floor", floor, "--service", "http://127.0.0.1:1"}, "measures NATS alone"},
		{"the floor too", []string{"--jetstream-floor", floor, "--floor"}, "measures NATS alone"},
		{"browsers", []string{"--jetstream-floor", floor, "--browsers"}, "measures NATS alone"},
		{"an nkey alone", []string{"--nats-nkey", "seed.nk"}, "need --jetstream-floor"},
		{"replicas alone", []string{"--jetstream-replicas", "1"}, "need --jetstream-floor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 1 {
				t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("stderr %q, want it to say %q", errOut.String(), tc.want)
			}
		})
	}
}
