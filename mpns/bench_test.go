package mpns

import (
	"strings"
	"testing"
)

// Payloads as senders build them in production: a toast with a deep link
// and an escaped parameter, a WP8 FlipTile setting every field with remote
// images (the heaviest tile the daemon parses), and a raw body at the 3 KB
// limit, which is what sync-style apps send.
var (
	benchToast = []byte(decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast>` +
		`<wp:Text1>Anna Lindqvist</wp:Text1><wp:Text2>Are we still on for lunch at 12:30? I booked the place by the river.</wp:Text2>` +
		`<wp:Param>/Views/Conversation.xaml?thread=8f3c2a&amp;msg=104233&amp;from=push</wp:Param>` +
		`<wp:Sound>/Assets/Sounds/chime.wav</wp:Sound></wp:Toast></wp:Notification>`)

	benchFlipTile = []byte(decl + `<wp:Notification xmlns:wp="WPNotification" Version="2.0">` +
		`<wp:Tile Id="/Views/Mailbox.xaml?account=work" Template="FlipTile">` +
		`<wp:SmallBackgroundImage>https://cdn.example.com/tiles/mail-159.png</wp:SmallBackgroundImage>` +
		`<wp:WideBackgroundImage>https://cdn.example.com/tiles/mail-691.png</wp:WideBackgroundImage>` +
		`<wp:WideBackBackgroundImage Action="Clear"></wp:WideBackBackgroundImage>` +
		`<wp:WideBackContent>Quarterly report draft, Lunch on Friday?, Build 4711 passed, Your parcel is on its way</wp:WideBackContent>` +
		`<wp:BackgroundImage>https://cdn.example.com/tiles/mail-336.png</wp:BackgroundImage>` +
		`<wp:Count>17</wp:Count><wp:Title>Work mail</wp:Title>` +
		`<wp:BackBackgroundImage>https://cdn.example.com/tiles/mail-back-336.png</wp:BackBackgroundImage>` +
		`<wp:BackTitle>17 unread</wp:BackTitle><wp:BackContent>Quarterly report draft</wp:BackContent>` +
		`</wp:Tile></wp:Notification>`)

	benchRaw = []byte(`{"sync":true,"folder":"inbox","changes":[` + strings.Repeat(`{"id":"8f3c2a-104233","op":"add","flags":["unread"]},`, 56) +
		`{"id":"8f3c2a-104234","op":"add","flags":[]}]}`)
)

// BenchmarkParsePayload measures what each side pays per notification to
// read its payload: the daemon parses toast and tile XML before applying
// it, and the service parses the whole request (headers and body) before
// accepting it. BenchmarkParseRequest covers the small request bodies.
func BenchmarkParsePayload(b *testing.B) {
	if len(benchRaw) > MaxBodySize {
		b.Fatalf("raw payload of %d bytes is over the %d limit", len(benchRaw), MaxBodySize)
	}
	rawHeader := hdr("Content-Type", "text/xml", "X-NotificationClass", "3", "X-MessageID", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	tileHeader := hdr("Content-Type", "text/xml", "X-NotificationClass", "1", "X-WindowsPhone-Target", "token",
		"X-MessageID", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	cases := []struct {
		name  string
		body  []byte
		parse func([]byte) error
	}{
		{"toast", benchToast, func(body []byte) error { _, err := ParseToast(body); return err }},
		{"tile-flip-wp8", benchFlipTile, func(body []byte) error { _, err := ParseTile(body); return err }},
		{"request-tile-flip-wp8", benchFlipTile, func(body []byte) error { _, err := ParseRequest(tileHeader, body); return err }},
		{"request-raw-3KB", benchRaw, func(body []byte) error { _, err := ParseRequest(rawHeader, body); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if err := c.parse(c.body); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, "notifications/s")
		})
	}
}

// BenchmarkTileApply measures the daemon's merge of a parsed FlipTile
// update into stored state, field by field, with a Clear.
func BenchmarkTileApply(b *testing.B) {
	t, err := ParseTile(benchFlipTile)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s := TileState{Template: TemplateFlip, Fields: map[string]string{"Count": "3", "Title": "Work mail", "WideBackBackgroundImage": "x"}}
		if err := s.Apply(t); err != nil {
			b.Fatal(err)
		}
		if _, ok := s.Fields["WideBackBackgroundImage"]; ok || s.Fields["Count"] != "17" {
			b.Fatalf("merge went wrong: %v", s.Fields)
		}
	}
	reportRate(b, "merges/s")
}

func reportRate(b *testing.B, unit string) {
	b.Helper()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
}
