package main

import (
	"unicode/utf8"

	"github.com/heraldpush/herald/app"
)

// textEvent is a raw event as `herald listen --text` prints it: the body
// as text instead of base64. The outer Body, always empty, hides the
// event's own.
type textEvent struct {
	app.Event
	Body []byte `json:"body,omitempty"`
	Text string `json:"text"`
}

// rawText returns what --text prints for e instead of the event, and
// whether it applies: to raw events whose body is UTF-8 text. Other bodies
// stay base64, so no byte is lost or changed.
func rawText(e app.Event) (textEvent, bool) {
	if e.Type != app.EventRaw || !utf8.Valid(e.Body) {
		return textEvent{}, false
	}
	return textEvent{Event: e, Text: string(e.Body)}, true
}
