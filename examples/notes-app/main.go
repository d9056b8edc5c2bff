// Command notes-app is a small app on Herald's app library: it opens its
// push channel, binds it to the shell's toast and tile, and reacts to raw
// notifications by printing the note they carry. Run as
// `notes-app handle`, it is the app's background handler: the daemon runs
// it with a raw notification on standard input while the app is not
// running.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/platform"
)

// note is what the app's cloud service sends in a raw notification.
type note struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 && os.Args[1] == "handle" {
		if err := handle(os.Stdin); err != nil {
			log.Fatalf("notes-app handle: %v", err)
		}
		return
	}
	socket := flag.String("socket", app.SocketFromEnv(defaultSocket()), "the herald daemon's socket (env HERALD_SOCKET)")
	appID := flag.String("app", "notes", "app id")
	domain := flag.String("image-domain", "https://img.example.com/", "where tile images may come from")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, app.NewClient(*socket), *appID, *domain); err != nil {
		log.Fatalf("notes-app: %v", err)
	}
}

func run(ctx context.Context, c *app.Client, appID, domain string) error {
	notes := 0
	ch := c.NewChannel(appID, app.ChannelOptions{
		// In the foreground toasts come to the app, not the shell.
		Foreground: true,
		Handlers: app.Handlers{
			ChannelURIUpdated: func(uri string) {
				// A real app sends this to its cloud service.
				fmt.Printf("channel URI: %s\n", uri)
				printTryIt(uri)
			},
			ConnectionStatusChanged: func(connected bool) {
				fmt.Printf("push service connected: %v\n", connected)
			},
			HTTPNotificationReceived: func(n app.RawNotification) {
				var nt note
				if err := json.Unmarshal(n.Body, &nt); err != nil || nt.Text == "" {
					fmt.Printf("raw notification (not a note): %q\n", n.Body)
					return
				}
				notes++
				fmt.Printf("note #%d: %s — %s\n", notes, nt.Title, nt.Text)
			},
			ShellToastNotificationReceived: func(t app.ToastNotification) {
				fmt.Printf("toast while open: %s %s (%s)\n", t.Text1, t.Text2, t.Param)
			},
			ErrorOccurred: func(e app.ChannelError) {
				fmt.Printf("error: %s: %s\n", e.Kind, e.Message)
			},
		},
	})
	if err := ch.Open(ctx); err != nil {
		switch {
		case errors.Is(err, app.ErrDaemonUnavailable):
			return fmt.Errorf("%w\nstart it with: herald run", err)
		case errors.Is(err, app.ErrQuotaExceeded):
			return fmt.Errorf("this device has no channel left for another app: %w", err)
		}
		return err
	}
	// Stop leaves the channel open: the cloud service keeps its URI, and
	// toasts and tiles keep arriving while the app is closed.
	defer ch.Stop()
	if err := ch.BindToShellToast(ctx); err != nil {
		return err
	}
	if err := ch.BindToShellTile(ctx, domain); err != nil {
		return err
	}
	fmt.Printf("bound to toast %v, tile %v; Ctrl-C to quit\n", ch.IsShellToastBound(), ch.IsShellTileBound())
	<-ctx.Done()
	return nil
}

func printTryIt(uri string) {
	fmt.Printf(`
Try it from another terminal:
  curl -H 'X-NotificationClass: 3' --data '{"title":"Shopping","text":"milk, eggs"}' %[1]s
  curl -H 'X-WindowsPhone-Target: toast' -H 'X-NotificationClass: 2' \
    --data '<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Notes</wp:Text1><wp:Text2>shared with you</wp:Text2></wp:Toast></wp:Notification>' %[1]s
  curl -H 'X-WindowsPhone-Target: token' -H 'X-NotificationClass: 1' \
    --data '<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Tile><wp:Count>3</wp:Count><wp:Title>Notes</wp:Title></wp:Tile></wp:Notification>' %[1]s
  herald tiles --app notes

`, uri)
}

// handle is the background handler: it files the note in the notes
// inbox, for the app to show when it next starts.
func handle(stdin io.Reader) error {
	body, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
	if err != nil {
		return err
	}
	var nt note
	if err := json.Unmarshal(body, &nt); err != nil {
		return fmt.Errorf("not a note: %w", err)
	}
	inbox := os.Getenv("NOTES_INBOX")
	if inbox == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		inbox = filepath.Join(dir, "notes-app", "inbox.jsonl")
	}
	if err := os.MkdirAll(filepath.Dir(inbox), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(inbox, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]string{"message_id": os.Getenv("HERALD_MESSAGE_ID"), "title": nt.Title, "text": nt.Text,
		"received_at": time.Now().UTC().Format(time.RFC3339)})
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	fmt.Printf("filed note %q for %s\n", nt.Title, os.Getenv("HERALD_APP"))
	return f.Close()
}

// defaultSocket is where `herald run` listens for this user.
func defaultSocket() string { return platform.DefaultPaths(os.Geteuid() != 0).Socket }
