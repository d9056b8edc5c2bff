package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/platform"
)

// clientFlags adds --socket to a command's flags.
func clientFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := app.SocketFromEnv(platform.DefaultPaths(userMode()).Socket)
	socket := fs.String("socket", def, "the daemon's local API socket (env HERALD_SOCKET)")
	fs.String("device", os.Getenv("HERALD_DEVICE"), "emulated phone to talk to, with herald emulate (env HERALD_DEVICE)")
	return fs, socket
}

func cliError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "herald %s: %v\n", cmd, err)
	return 1
}

func timeoutCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func openCmd(args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("open", stderr)
	name := fs.String("channel", "", "channel name (default \"default\")")
	toast := fs.Bool("toast", false, "bind the channel to the shell's toast")
	tile := fs.Bool("tile", false, "bind the channel to the app's live tile")
	var domains cli.Strings
	fs.Var(&domains, "domain", "allowed base URI for remote tile images (repeatable)")
	serviceName := fs.String("service-name", "", "authenticated sender's service name (certificate CN)")
	renew := fs.Bool("renew", false, "rotate the channel URI")
	asJSON := fs.Bool("json", false, "print {\"app\",\"channel\",\"uri\"}")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: herald open APP [--channel NAME] [--toast] [--tile] [--domain URL]... [--renew] [--json]")
		return 2
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
	ch, err := newClient(fs, *socket).Open(ctx, pos[0], req)
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
	fs, socket := clientFlags("close", stderr)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: herald close APP")
		return 2
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	if err := newClient(fs, *socket).Close(ctx, pos[0]); err != nil {
		return cliError(stderr, "close", err)
	}
	return 0
}

func pinCmd(args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("pin", stderr)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: herald pin APP TILE_ID")
		return 2
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	if _, err := newClient(fs, *socket).Pin(ctx, pos[0], pos[1]); err != nil {
		return cliError(stderr, "pin", err)
	}
	return 0
}

func powerCmd(args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("power", stderr)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: herald power normal|low|critical")
		return 2
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	if err := newClient(fs, *socket).SetPower(ctx, pos[0]); err != nil {
		return cliError(stderr, "power", err)
	}
	return 0
}

// listenLine is what `herald listen` prints for each event.
type listenLine struct {
	Type      string `json:"type"`
	App       string `json:"app"`
	MessageID string `json:"message_id,omitempty"`
	Body      []byte `json:"body,omitempty"`
	Text1     string `json:"text1,omitempty"`
	Text2     string `json:"text2,omitempty"`
	Param     string `json:"param,omitempty"`
	URI       string `json:"uri,omitempty"`
	Connected *bool  `json:"connected,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
	Message   string `json:"message,omitempty"`
}

func listenCmd(args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("listen", stderr)
	background := fs.Bool("background", false, "run without being in the foreground (toasts go to the shell)")
	text := fs.Bool("text", false, `print raw bodies that are UTF-8 as "text" instead of base64 "body"`)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: herald listen APP [--background] [--text]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stream, err := newClient(fs, *socket).Listen(ctx, pos[0], app.ListenOptions{Foreground: !*background, Reconnect: true})
	if err != nil {
		return cliError(stderr, "listen", err)
	}
	defer stream.Close()
	enc := json.NewEncoder(stdout)
	for {
		e, err := stream.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return cliError(stderr, "listen", err)
		}
		line := listenLine{Type: e.Type, App: e.App, MessageID: e.MessageID, Text1: e.Text1, Text2: e.Text2, Param: e.Param,
			URI: e.URI, Connected: e.Connected, ErrorKind: e.ErrorKind, Message: e.Message}
		if e.Type == app.EventRaw {
			line.Body = e.Body
			if line.Body == nil {
				line.Body = []byte{}
			}
		}
		var out any = line
		if t, ok := rawText(e); ok && *text {
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
	fs, socket := clientFlags(what, stderr)
	appID := fs.String("app", "", "only this app")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "usage: herald %s [--app APP] [--json]\n", what)
		return 2
	}
	ctx, cancel := timeoutCtx()
	defer cancel()
	c := newClient(fs, *socket)
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
		fmt.Fprintln(tw, "APP\tCHANNEL\tTOAST\tTILE\tURI")
		for _, ch := range chans {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", ch.App, ch.Name, ch.Toast, ch.Tile, ch.URI)
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
