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
	u, err := url.Parse(c.Service)
	if err != nil {
		return channel.Config{}, fmt.Errorf("service %q: %w", c.Service, err)
	}
	switch u.Scheme {
	case "https":
		tc, err := channel.LoadClientTLS(c.ServiceCA, c.ServicePin)
		if err != nil {
			return channel.Config{}, err
		}
		return channel.Config{TLS: tc}, nil
	case "http":
		if c.ServiceCA != "" || c.ServicePin != "" {
			return channel.Config{}, fmt.Errorf("service %q: service_ca and service_pin need an https service", c.Service)
		}
		if !c.Insecure && !isLoopback(u.Hostname()) {
			return channel.Config{}, fmt.Errorf("service %q: %w (use https, or --insecure / insecure = true to accept it)", c.Service, errInsecureService)
		}
		return channel.Config{}, nil
	}
	return channel.Config{}, fmt.Errorf("service %q: want http(s)://host[:port]", c.Service)
}

// isLoopback reports whether host names this machine's loopback.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
