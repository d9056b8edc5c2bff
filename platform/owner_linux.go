package platform

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// peerPid is the pid of the process at the other end of a Unix socket
// connection (SO_PEERCRED; for a listening socket, the one that listened).
func peerPid(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

// tcpListenerPid finds the process listening on addr: the socket's inode
// from /proc/net/tcp{,6}, then the process with a descriptor for it. It
// sees only the processes /proc lets this user read.
func tcpListenerPid(addr string) int {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0
	}
	ip := net.ParseIP(host)
	inode := ""
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = listenInode(f, ip, uint16(port)); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == want {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

// listenInode returns the inode of the listening socket on ip:port in a
// /proc/net/tcp table; an unspecified address matches any listener on the
// port.
func listenInode(table string, ip net.IP, port uint16) string {
	f, err := os.Open(table)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
			continue
		}
		hexIP, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok || hexPort != fmt.Sprintf("%04X", port) {
			continue
		}
		if ip != nil && !ip.IsUnspecified() {
			if got := procIP(hexIP); got != nil && !got.IsUnspecified() && !got.Equal(ip) {
				continue
			}
		}
		return fields[9]
	}
	return ""
}

// procIP decodes an address of /proc/net/tcp: 32-bit words in host
// (little-endian) order.
func procIP(h string) net.IP {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b)
}
