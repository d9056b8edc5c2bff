package main

import (
	"net"
	"net/url"
	"strings"
)

// natsWarnings are what heraldsvc says loudly at start about how it
// reaches NATS. On a cluster the buckets are the service's database:
// whoever reads them has every device's key and can be any device, and
// whoever can publish to the queue stream can notify any device.
// credentials is whether any are given by flag (a URL's own user:pass
// counts too), tls whether TLS is asked for by flag (a CA or a client
// certificate).
func natsWarnings(urls string, credentials, tls bool) []string {
	var remote, plain []string
	for _, raw := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			continue // refused by the flags' check before this
		}
		if loopbackHost(u.Hostname()) {
			continue
		}
		if u.User != nil {
			credentials = true
		}
		remote = append(remote, u.Host)
		if u.Scheme != "tls" && !tls {
			plain = append(plain, u.Host)
		}
	}
	var ws []string
	if len(remote) > 0 && !credentials {
		ws = append(ws, "NATS servers "+strings.Join(remote, ", ")+" are reached without credentials: anyone who can reach them "+
			"can read every device's key and notify any device. Give the node its own NATS user (--nats-nkey, --nats-creds "+
			"or --nats-user) in an account that allows only Herald's subjects (docs/cluster.md)")
	}
	if len(plain) > 0 {
		ws = append(ws, "NATS servers "+strings.Join(plain, ", ")+" are reached without TLS: credentials, device keys and "+
			"notifications cross the network in the clear. Use tls:// URLs or --nats-tls-ca (docs/cluster.md)")
	}
	return ws
}

// loopbackHost reports whether host is this machine: a loopback address
// or localhost. Any other name may resolve anywhere.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURLs is urls without any user:pass in them, for the log.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
