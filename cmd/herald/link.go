package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/platform"
)

// errInsecureService: a plain http service off loopback without --insecure.
var errInsecureService = errors.New("refusing a plain http:// notification service that is not on loopback")

// linkSecurity checks how the daemon would reach its service and returns
// the link settings that follow: TLS roots and pin for an https service,
// and, for the embedded service (the same process, reached over
// loopback), that its refusals are taken at their word.
func linkSecurity(c platform.Config) (channel.Config, error) {
	if c.Service == "" {
		if c.ServiceCA != "" || c.ServicePin != "" {
			return channel.Config{}, errors.New("service_ca and service_pin need an https service")
		}
		return channel.Config{TrustRefusals: true}, nil
	}
	// Several comma-separated services are the nodes of a cluster: each
	// must pass on its own, and TLS settings need every one to be https.
	var cfg channel.Config
	schemes := map[string]bool{}
	for _, one := range strings.Split(c.Service, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil {
			return channel.Config{}, fmt.Errorf("service %q: %w", one, err)
		}
		schemes[u.Scheme] = true
		switch u.Scheme {
		case "https":
		case "http":
			if !c.Insecure && !isLoopback(u.Hostname()) {
				return channel.Config{}, fmt.Errorf("service %q: %w (use https, or --insecure / insecure = true to accept it)", one, errInsecureService)
			}
		default:
			return channel.Config{}, fmt.Errorf("service %q: want http(s)://host[:port]", one)
		}
	}
	if schemes["http"] && (c.ServiceCA != "" || c.ServicePin != "") {
		return channel.Config{}, fmt.Errorf("service %q: service_ca and service_pin need an https service", c.Service)
	}
	if schemes["https"] {
		tc, err := channel.LoadClientTLS(c.ServiceCA, c.ServicePin)
		if err != nil {
			return channel.Config{}, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// isLoopback reports whether host names this machine's loopback.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
