package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/platform"
)

// clientFlags returns a client command's flags, with --socket and
// --device; usage is the command's usage line. Resolve the socket with
// clientSocket after parsing.
func clientFlags(name, usage string) (*flag.FlagSet, *string) {
	fs := cli.NewFlagSet("herald "+name, usage)
	paths := platform.DefaultPaths(userMode())
	socket := fs.String("socket", "", fmt.Sprintf("the daemon's local API socket (env %s; default %s, or %s with --device)",
		platform.EnvSocket, paths.Socket, emulatorSocket(paths)))
	fs.String("device", os.Getenv(EnvDevice), "emulated phone to talk to, with herald emulate (env "+EnvDevice+")")
	return fs, socket
}

// EnvDevice names the emulated phone client commands talk to.
const EnvDevice = "HERALD_DEVICE"

// emulatorSocket is where `herald emulate` listens by default: beside the
// daemon's socket, so that a phone and an emulator run side by side.
func emulatorSocket(p platform.Paths) string {
	return filepath.Join(filepath.Dir(p.Socket), "emulator.sock")
}

// clientSocket is the socket a client command talks to: --socket, else
// HERALD_SOCKET, else the emulator's default socket when a device is named
// and the daemon's otherwise.
func clientSocket(fs *flag.FlagSet, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if s := os.Getenv(platform.EnvSocket); s != "" {
		return s
	}
	paths := platform.DefaultPaths(userMode())
	if f := fs.Lookup("device"); f != nil && f.Value.String() != "" {
		return emulatorSocket(paths)
	}
	return paths.Socket
}

func cliError(stderr io.Writer, cmd string, err error) int {
	if errors.Is(err, app.ErrDaemonUnavailable) {
		fmt.Fprintf(stderr, "herald %s: %v\n%s", cmd, err, notRunningHint)
		return 1
	}
	fmt.Fprintf(stderr, "herald %s: %v\n", cmd, err)
	return 1
}

// notRunningHint follows the "no daemon on the socket" error.
const notRunningHint = `  Start the daemon in another terminal with "herald run" (one phone) or "herald emulate"
  (many; --device NAME talks to its socket), or the OS service with "herald start". If it
  runs with another socket, pass the socket it printed with --socket PATH or HERALD_SOCKET=PATH.
`

func timeoutCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func openCmd(args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("open", "herald open APP [--channel NAME] [--toast] [--tile] [--domain URL]... [--renew] [--json] [--socket PATH] [--device NAME]")
	name := fs.String("channel", "", "channel name (default \"default\")")
	toast := fs.Bool("toast", false, "bind the channel to the shell's toast")
	tile := fs.Bool("tile", false, "bind the channel to the app's live tile")
	var domains cli.Strings
	fs.Var(&domains, "domain", "allowed base URI for remote tile images (repeatable)")
	serviceName := fs.String("service-name", "", "authenticated sender's service name (certificate CN)")
	renew := fs.Bool("renew", false, "rotate the channel URI")
	asJSON := fs.Bool("json", false, "print {\"app\",\"channel\",\"uri\"}")
	pos, code, ok := parseClientArgs(fs, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	req := app.OpenRequest{Channel: *name, ServiceName: *serviceName, Renew: *renew}
	// Only the bindings asked for are changed; opening again without
	// flags leaves earlier bindings alone.
	if *toast {
		req.Toast = toast
	}
	if *tile {
		req.Tile = tile
		d := []string(domains)
		if d == nil {
			d = []string{}
		}
		req.Domains = &d
	} else if len(domains) > 0 {
		d := []string(domains)
		req.Domains = &d
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	ch, err := newClient(fs, clientSocket(fs, *socket)).Open(ctx, pos[0], req)
	if err != nil {
		return cliError(stderr, "open", err)
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(map[string]string{"app": ch.App, "channel": ch.Name, "uri": ch.URI})
	} else {
		fmt.Fprintln(stdout, ch.URI)
	}
	return 0
}

func closeCmd(args []string, stdout, stderr io.Writer) int {
	return simpleCmd("close", "herald close APP [--socket PATH] [--device NAME]", 1, args, stdout, stderr,
		func(ctx context.Context, c *app.Client, pos []string) error { return c.Close(ctx, pos[0]) })
}

func pinCmd(args []string, stdout, stderr io.Writer) int {
	return simpleCmd("pin", "herald pin APP TILE_ID [--socket PATH] [--device NAME]", 2, args, stdout, stderr,
		func(ctx context.Context, c *app.Client, pos []string) error {
			_, err := c.Pin(ctx, pos[0], pos[1])
			return err
		})
}

func powerCmd(args []string, stdout, stderr io.Writer) int {
	return simpleCmd("power", "herald power normal|low|critical|auto [--socket PATH] [--device NAME]", 1, args, stdout, stderr,
		func(ctx context.Context, c *app.Client, pos []string) error { return c.SetPower(ctx, pos[0]) })
}

// simpleCmd runs a client command that has no flags of its own, takes n
// arguments and makes one call that prints nothing.
func simpleCmd(name, usage string, n int, args []string, stdout, stderr io.Writer,
	call func(context.Context, *app.Client, []string) error) int {
	fs, socket := clientFlags(name, usage)
	pos, code, ok := parseClientArgs(fs, args, n, stdout, stderr)
	if !ok {
		return code
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	if err := call(ctx, newClient(fs, clientSocket(fs, *socket)), pos); err != nil {
		return cliError(stderr, name, err)
	}
	return 0
}

// parseClientArgs parses a client command's flags and checks that it got
// n arguments; otherwise it prints the usage line and returns exit code 2.
func parseClientArgs(fs *flag.FlagSet, args []string, n int, stdout, stderr io.Writer) ([]string, int, bool) {
	pos, code, ok := cli.ParseCommand(fs, args, stdout, stderr)
	if !ok {
		return nil, code, false
	}
	if len(pos) != n {
		fmt.Fprintln(stderr, "usage: "+cli.Usage(fs))
		return nil, 2, false
	}
	return pos, 0, true
}

func listenCmd(args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("listen", "herald listen APP [--background] [--text] [--socket PATH] [--device NAME]")
	background := fs.Bool("background", false, "run without being in the foreground (toasts go to the shell)")
	text := fs.Bool("text", false, `print raw bodies that are UTF-8 as "text" instead of base64 "body"`)
	pos, code, ok := parseClientArgs(fs, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return listen(ctx, newClient(fs, clientSocket(fs, *socket)), pos[0], !*background, *text, stdout, stderr)
}

// listen runs an app's event stream until ctx ends (Ctrl-C) or stdout
// fails.
func listen(ctx context.Context, c *app.Client, appID string, foreground, text bool, stdout, stderr io.Writer) int {
	stream, err := c.Listen(ctx, appID, app.ListenOptions{Foreground: foreground, Reconnect: true})
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		return cliError(stderr, "listen", err)
	}
	defer stream.Close()
	// Ctrl-C closes the stream the way an app that stops does, with a
	// close frame the daemon answers, so the app stops counting as
	// running at once. Handing ctx to Next instead would cut the
	// connection under it, which the daemon takes for a crash and keeps
	// the app "running" for its grace period. next ends a reconnect that
	// is still waiting for the daemon.
	next, endNext := context.WithCancel(context.Background())
	defer endNext()
	closed := make(chan struct{})
	stopClose := context.AfterFunc(ctx, func() {
		defer close(closed)
		stream.Close()
		endNext()
	})
	defer func() {
		if !stopClose() {
			<-closed // the close handshake is under way: let it finish
		}
	}()
	enc := json.NewEncoder(stdout)
	for {
		e, err := stream.Next(next)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return cliError(stderr, "listen", err)
		}
		// The line is the event as the local API defines it.
		var out any = e
		if t, ok := rawText(e); ok && text {
			out = t
		}
		if err := enc.Encode(out); err != nil {
			return 1
		}
		if f, ok := stdout.(*os.File); ok {
			f.Sync()
		}
	}
}

func listCmd(what string, args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags(what, "herald "+what+" [--app APP] [--json] [--socket PATH] [--device NAME]")
	appID := fs.String("app", "", "only this app")
	asJSON := fs.Bool("json", false, "print JSON")
	_, code, ok := parseClientArgs(fs, args, 0, stdout, stderr)
	if !ok {
		return code
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	c := newClient(fs, clientSocket(fs, *socket))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch what {
	case "channels":
		chans, err := c.Channels(ctx, *appID)
		if err != nil {
			return cliError(stderr, what, err)
		}
		if *asJSON {
			printJSON(stdout, chans)
			return 0
		}
		fmt.Fprintln(tw, "APP\tOWNER\tCHANNEL\tTOAST\tTILE\tURI")
		for _, ch := range chans {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%s\n", ch.App, ownerName(ch.OwnerUID), ch.Name, ch.Toast, ch.Tile, ch.URI)
		}
	case "tiles":
		tiles, err := c.Tiles(ctx, *appID)
		if err != nil {
			return cliError(stderr, what, err)
		}
		if *asJSON {
			out := make([]map[string]any, 0, len(tiles))
			for _, t := range tiles {
				out = append(out, map[string]any{"app": t.App, "tile_id": t.TileID, "template": t.Template, "fields": t.Fields})
			}
			printJSON(stdout, out)
			return 0
		}
		fmt.Fprintln(tw, "APP\tTILE\tTEMPLATE\tFIELDS")
		for _, t := range tiles {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.App, orDash(t.TileID), orDash(t.Template), fieldList(t.Fields))
		}
	case "toasts":
		toasts, err := c.Toasts(ctx, *appID)
		if err != nil {
			return cliError(stderr, what, err)
		}
		if *asJSON {
			out := make([]map[string]any, 0, len(toasts))
			for _, t := range toasts {
				out = append(out, map[string]any{"app": t.App, "text1": t.Text1, "text2": t.Text2, "param": t.Param,
					"received_at": t.ReceivedAt.UTC().Format(time.RFC3339)})
			}
			printJSON(stdout, out)
			return 0
		}
		fmt.Fprintln(tw, "RECEIVED\tAPP\tSHOWN BY\tTEXT1\tTEXT2\tPARAM")
		for _, t := range toasts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ReceivedAt.Local().Format(time.DateTime), t.App, t.ShownBy, t.Text1, t.Text2, t.Param)
		}
	}
	return 0
}

// ownerName shows an app's owner as its user name, or its uid when the
// name is unknown here.
func ownerName(uid *uint32) string {
	if uid == nil {
		return "-"
	}
	id := strconv.FormatUint(uint64(*uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fieldList(f map[string]string) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%q", k, f[k])
	}
	return b.String()
}
