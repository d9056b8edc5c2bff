package main

import (
	"context"
	"fmt"
	"io"

	"github.com/heraldpush/herald/app"
)

// uiURLCmd prints the start screen's address with its key. The daemon
// answers only its own user and root, over the socket whose peer the
// kernel names, so this is how the page is tied to the user.
func uiURLCmd(args []string, stdout, stderr io.Writer) int {
	return simpleCmd("ui-url", "herald ui-url [--socket PATH] [--device NAME]", 0, args, stdout, stderr,
		func(ctx context.Context, c *app.Client, _ []string) error {
			u, err := c.StartScreen(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, u)
			return nil
		})
}
