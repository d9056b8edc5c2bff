package main

import (
	"fmt"

	"github.com/heraldpush/herald/platform"
)

// The clashes a newcomer meets by starting a second daemon or emulator:
// each error says what holds the socket or port and which flag to change.

// checkSocketFree refuses a socket that a live process serves, before
// anything else is started.
func checkSocketFree(socket, others string) error {
	if owner, live := platform.SocketOwner(socket); live {
		return fmt.Errorf("the local API socket %s is served by %s.\n"+
			"  Use that one (herald status, herald open ...), stop it, or start this one with its own --socket PATH%s",
			socket, owner, others)
	}
	return nil
}

// listenClash explains a failed listen on addr: what holds it, and the
// flag to change.
func listenClash(err error, what, addr, hint string) error {
	if !platform.IsAddrInUse(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %s is in use by %s.\n  %s", what, addr, platform.PortOwner(addr), hint)
}
