// Package freeport picks loopback ports for servers in tests that must
// know their port before they start: a cluster's routes, a service that
// comes back on the same port after a restart (its channel URIs carry it).
//
// The ports are picked below the kernel's ephemeral range. A port the OS
// hands out (to a listener on port 0, or to an outgoing connection, of
// which parallel tests make thousands) can be taken again in the moment
// between closing it here and the server's own listen; a port below that
// range is only ever taken by someone who names it.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Port is a loopback port nothing listens on now.
func Port(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		ln.Close()
		return port
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

// Addr is Port as a host:port on 127.0.0.1.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// says it in /proc; elsewhere the IANA range's start bounds it).
func ephemeralLow() int {
	low := 49152
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 10100 {
				low = min(low, n)
			}
		}
	}
	return low
}
