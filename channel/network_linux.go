package channel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/heraldpush/herald/internal/netroute"
	"golang.org/x/sys/unix"
)

// CurrentNetwork names the network the device is on: the interface of the
// default route, its gateway, and the gateway's hardware address (two home
// networks both using 192.168.1.1 still differ there). Without a default
// route it returns "offline".
func CurrentNetwork(ctx context.Context) (string, error) {
	iface, gw, err := netroute.Default("/proc/net/route")
	if err != nil {
		return "", err
	}
	if iface == "" {
		return "offline", nil
	}
	id := iface + " via " + gw
	if mac := arpAddr("/proc/net/arp", gw); mac != "" {
		id += " (" + mac + ")"
	}
	return id, nil
}

func arpAddr(file, ip string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 4 && fields[0] == ip && fields[3] != "00:00:00:00:00:00" {
			return fields[3]
		}
	}
	return ""
}

// WatchNetwork calls up whenever the kernel reports a link coming up, an
// address being added or a route appearing, until ctx ends. It listens on
// a netlink socket, so it costs nothing while nothing changes: no polling.
// Bursts of messages (one network coming up produces several) are passed
// on as they come; the link's reconnect jitter absorbs them.
func WatchNetwork(ctx context.Context, up func()) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("channel: netlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return fmt.Errorf("channel: netlink bind: %w", err)
	}
	// A non-blocking descriptor goes to Go's poller, so Close from another
	// goroutine ends a pending Read.
	f := os.NewFile(uintptr(fd), "netlink")
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("channel: netlink read: %w", err)
		}
		if networkUp(buf[:n]) {
			up()
		}
	}
}

// networkUp reports whether a batch of netlink messages says something
// came up: a running link, a new address or a new route.
func networkUp(b []byte) bool {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.RTM_NEWADDR, unix.RTM_NEWROUTE:
			return true
		case unix.RTM_NEWLINK:
			if len(m.Data) >= unix.SizeofIfInfomsg {
				flags := binary.NativeEndian.Uint32(m.Data[8:12])
				if flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0 {
					return true
				}
			}
		}
	}
	return false
}
