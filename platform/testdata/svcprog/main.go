// Command svcprog is a stand-in daemon for the platform service tests: run
// by the OS service manager through platform.Service, it records that it
// started, answers "ping" on a Unix socket until told to stop, and then
// records that it stopped.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/heraldpush/herald/platform"
)

func main() {
	name := flag.String("name", "herald-svcprog", "service name")
	sock := flag.String("socket", "", "Unix socket to answer ping on")
	marker := flag.String("marker", "", "file to record start and stop in")
	flag.Parse()

	svc, err := platform.NewService(platform.ServiceOptions{Name: *name}, func(ctx context.Context) error {
		return serve(ctx, *sock, *marker)
	})
	if err != nil {
		slog.Error("new service", "err", err)
		os.Exit(1)
	}
	if err := svc.Run(); err != nil {
		slog.Error("run", "err", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, sock, marker string) error {
	l, err := platform.ListenSocket(sock, "")
	if err != nil {
		return err
	}
	if err := record(marker, fmt.Sprintf("started %d\n", os.Getpid())); err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		go answer(c)
	}
	return record(marker, "stopped\n")
}

func answer(c net.Conn) {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ping" {
		return
	}
	fmt.Fprintln(c, "pong")
}

func record(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
