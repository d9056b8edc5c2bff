package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/internal/devtls"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
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
		if c.TLS {
			// The development certificate names loopback only.
			host, _, err := net.SplitHostPort(c.Listen)
			if err != nil {
				return channel.Config{}, fmt.Errorf("listen %q: %w", c.Listen, err)
			}
			if !devtls.IsLoopbackHost(host) {
				return channel.Config{}, fmt.Errorf("listen %q: tls serves loopback only (127.0.0.1, ::1, localhost), the names its development certificate is for", c.Listen)
			}
		}
		return channel.Config{TrustRefusals: true}, nil
	}
	if c.TLS {
		return channel.Config{}, errors.New("tls (--tls) is for the embedded service; for another service's https use service_ca (--service-ca)")
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

// embeddedTLS makes (or finds) the development CA and certificate in
// data/tls and sets the embedded service up to speak TLS on its listen
// address, where channel URIs point; its plain listener moves to a free
// loopback port nothing advertises. The daemon's link trusts that CA
// alone.
func embeddedTLS(sc *server.ServeConfig, link *channel.Config, data string, log *slog.Logger) (devtls.Files, error) {
	// Certificates are wall-clock business: clients judge them by theirs.
	dev, err := devtls.Ensure(filepath.Join(data, "tls"), time.Now())
	if err != nil {
		return devtls.Files{}, err
	}
	keeper, err := devtls.NewKeeper(dev, time.Now, log.Info)
	if err != nil {
		return devtls.Files{}, err
	}
	host, _, err := net.SplitHostPort(sc.Listen)
	if err != nil {
		return devtls.Files{}, fmt.Errorf("listen %q: %w", sc.Listen, err)
	}
	tc, err := channel.LoadClientTLS(dev.CA, "")
	if err != nil {
		return devtls.Files{}, err
	}
	sc.TLSListen, sc.Listen, sc.TLSPublic = sc.Listen, net.JoinHostPort(host, "0"), true
	sc.TLS = server.TLSFiles{Cert: dev.Cert, Key: dev.Key, GetCertificate: keeper.GetCertificate}
	link.TLS = tc
	return dev, nil
}

// printDevTLS tells the user where the development CA is and how each
// kind of client trusts it.
func printDevTLS(w io.Writer, f devtls.Files) {
	state := "kept from an earlier start"
	if f.NewCA {
		state = "made now; clients that trusted an earlier one must trust this one"
	}
	fmt.Fprintf(w, "herald: development CA %s (%s)\n", f.CA, state)
	io.WriteString(w, devtls.TrustHelp(f.CA))
}
