package wire

import (
	"fmt"
	"testing"
)

// benchNotify builds a notify frame of n notifications shaped like real
// traffic: toasts, FlipTile updates and small raw bodies in turn, with
// message ids in the GUID form sender libraries use.
func benchNotify(tb testing.TB, n int) *Notify {
	tb.Helper()
	const decl = `<?xml version="1.0" encoding="utf-8"?>`
	toast := []byte(decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Anna Lindqvist</wp:Text1>` +
		`<wp:Text2>Are we still on for lunch at 12:30?</wp:Text2><wp:Param>/Views/Conversation.xaml?thread=8f3c2a</wp:Param>` +
		`</wp:Toast></wp:Notification>`)
	tile := []byte(decl + `<wp:Notification xmlns:wp="WPNotification" Version="2.0"><wp:Tile Template="FlipTile">` +
		`<wp:BackgroundImage>https://cdn.example.com/tiles/mail-336.png</wp:BackgroundImage><wp:Count>17</wp:Count>` +
		`<wp:Title>Work mail</wp:Title><wp:BackTitle>17 unread</wp:BackTitle><wp:BackContent>Quarterly report draft</wp:BackContent>` +
		`</wp:Tile></wp:Notification>`)
	raw := []byte(`{"sync":true,"folder":"inbox","unread":12,"since":"2026-11-27T04:00:00Z"}`)
	f := &Notify{Type: TypeNotify}
	for i := range n {
		nt := Notification{Seq: uint64(1000 + i), ChannelID: "c7Hq2vXbT1mK9pLz4sWd8A", Class: 2,
			MessageID: fmt.Sprintf("3f2504e0-4f89-11d3-9a0c-%012x", i)}
		switch i % 3 {
		case 0:
			nt.Kind, nt.Body = "toast", toast
		case 1:
			nt.Kind, nt.Body, nt.Class = "tile", tile, 1
		default:
			nt.Kind, nt.Body, nt.Class = "raw", raw, 3
		}
		f.Notifications = append(f.Notifications, nt)
	}
	return f
}

// BenchmarkNotify measures the service encoding and the daemon decoding
// one notify frame, for a lone notification and for a full batch.
func BenchmarkNotify(b *testing.B) {
	for _, n := range []int{1, 12} {
		f := benchNotify(b, n)
		frame, err := Encode(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("encode/batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := Encode(f); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, n, "notifications/s")
		})
		b.Run(fmt.Sprintf("decode/batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				v, err := DecodeService(frame)
				if err != nil {
					b.Fatal(err)
				}
				if got := len(v.(*Notify).Notifications); got != n {
					b.Fatalf("decoded %d notifications, want %d", got, n)
				}
			}
			reportRate(b, n, "notifications/s")
		})
	}
}

// BenchmarkAck measures the daemon encoding a cumulative ack and the
// service decoding it: one per notify frame applied.
func BenchmarkAck(b *testing.B) {
	ack := Ack{Type: TypeAck, Seq: 18_446_744_073}
	frame, err := Encode(ack)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(ack); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "acks/s")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := DecodeDevice(frame)
			if err != nil {
				b.Fatal(err)
			}
			if v.(*Ack).Seq != ack.Seq {
				b.Fatalf("decoded %+v, want %+v", v, ack)
			}
		}
		reportRate(b, 1, "acks/s")
	})
}

// reportRate reports per items handled per iteration.
func reportRate(b *testing.B, per int, unit string) {
	b.Helper()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N*per)/s, unit)
	}
}

// BenchmarkDecodeAck measures decoding the frame the service reads most:
// the fast path, and the general decoder it spares.
func BenchmarkDecodeAck(b *testing.B) {
	frame := []byte(`{"type":"ack","seq":1234567}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeDevice(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		spaced := []byte(`{"type":"ack", "seq":1234567}`)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeDevice(spaced); err != nil {
				b.Fatal(err)
			}
		}
	})
}
