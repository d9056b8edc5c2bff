package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestServeStoreFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"not a NATS URL", []string{"--store", "http://h1:4222"}, "not a nats:// or tls:// URL"},
		{"one bad URL among good", []string{"--store", "nats://h1:4222,h2:4222"}, "not a nats:// or tls:// URL"},
		{"credentials without store", []string{"--nats-creds", "x.creds"}, "NATS flags without --store"},
		{"replicas without store", []string{"--store-replicas", "3"}, "NATS flags without --store"},
		{"certificate without key", []string{"--store", "tls://h1:4222", "--nats-tls-cert", "c.pem"}, "go together"},
		{"replicas out of range", []string{"--store", "nats://h1:4222", "--store-replicas", "9"}, "must be 1-5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(append([]string{"serve"}, c.args...), strings.NewReader(""), io.Discard, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), c.want)
			}
		})
	}
}
