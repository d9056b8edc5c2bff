// Command herald is Herald's device daemon and its command line: the phone
// that receives push notifications for the apps on this machine.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: herald COMMAND [flags]

The daemon:
  run [--service URL] [--data DIR] [--socket PATH] [--listen ADDR] [--config FILE]
                      run in the foreground; without --service an embedded
                      notification service listens on --listen (127.0.0.1:8790)
  run ... --ui ADDR   also serve the start-screen page on ADDR; it prints the
                      page's address, which carries its key
  ui-url              print the start screen's address again (its key included;
                      only for the daemon's user and root)
  run ... --tls       the embedded service on https, with a local CA in DATA/tls
                      (for https-only senders such as npm web-push)
  emulate --devices N [--service URL] [--listen ADDR] [--ui ADDR] [--data DIR] [--socket PATH]
          [--queue-depth N] [--inactive-after D] [--daily-quota N]
                      run N phones in one process, beside a phone (own socket,
                      127.0.0.1:8792, own data); pick one in any client command
                      with --device NAME (env HERALD_DEVICE)
  config [run flags]  print the effective configuration as a file that
                      loads back unchanged (herald run --config FILE)

The OS service (system-wide as root, per user with --user; --name NAME for
another instance than "herald"):
  install [--user] [--name NAME] [--print] [--run-as USER] [--log-dir DIR] [run flags]
                      install the service (--print: print its systemd unit)
  uninstall|start|stop|restart [--user] [--name NAME]
  status [--user] [--name NAME] [--socket PATH] [--json]
                      whether the service is installed and running and,
                      if the daemon answers, its link state

Apps and state (talk to the running daemon over --socket / HERALD_SOCKET, or
to herald emulate's socket with --device NAME):
  open APP [--channel NAME] [--toast] [--tile] [--domain URL]... [--renew] [--json]
                      open (or find) the app's channel and print its URI
  close APP           close the app's channel
  listen APP [--background] [--text]
                      act as the running app: print each raw notification and
                      foreground toast as a JSON line
  channels|tiles|toasts [--app APP] [--json]
  pin APP TILE_ID     pin a secondary tile
  power normal|low|critical|auto

herald COMMAND --help shows a command's arguments and flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runDaemon(rest, stdout, stderr)
	case "config":
		return printConfig(rest, stdout, stderr)
	case "emulate":
		return emulateCmd(rest, stdout, stderr)
	case "open":
		return openCmd(rest, stdout, stderr)
	case "close":
		return closeCmd(rest, stdout, stderr)
	case "listen":
		return listenCmd(rest, stdout, stderr)
	case "channels", "tiles", "toasts":
		return listCmd(cmd, rest, stdout, stderr)
	case "pin":
		return pinCmd(rest, stdout, stderr)
	case "power":
		return powerCmd(rest, stdout, stderr)
	case "ui-url":
		return uiURLCmd(rest, stdout, stderr)
	case "status":
		return statusCmd(rest, stdout, stderr)
	case "install":
		return installCmd(rest, stdout, stderr)
	case "uninstall", "start", "stop", "restart":
		return controlCmd(cmd, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", cmd, usage)
	return 2
}
