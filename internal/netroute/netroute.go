// Package netroute reads the IPv4 default route from a Linux
// /proc/net/route table: the link names the network it is on by it, and
// the daemon tells Wi-Fi from a wire by its interface.
package netroute

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Default returns the interface and gateway of the IPv4 default route with
// the lowest metric in file, or "" for both when there is none.
func Default(file string) (iface, gateway string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return "", "", fmt.Errorf("netroute: reading routes: %w", err)
	}
	defer f.Close()
	best := -1
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(fields) < 8 || fields[1] != "00000000" || fields[7] != "00000000" {
			continue
		}
		metric, err := strconv.Atoi(fields[6])
		if err != nil || (best >= 0 && metric >= best) {
			continue
		}
		raw, err := hex.DecodeString(fields[2])
		if err != nil || len(raw) != 4 {
			continue
		}
		// The kernel prints the address in host byte order.
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, binary.LittleEndian.Uint32(raw))
		best, iface, gateway = metric, fields[0], ip.String()
	}
	return iface, gateway, sc.Err()
}
