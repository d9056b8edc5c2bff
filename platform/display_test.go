package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/heraldpush/herald/internal/dbustest"
)

func TestNewDisplayNames(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type displayCase struct {
		name     string
		wantName string
		wantErr  error
	}
	tests := []displayCase{
		{"log", "log", nil},
		{"x11", "", ErrUnknownDisplay},
		{"dbus", "", ErrDisplayUnavailable}, // no session bus address
	}
	if runtime.GOOS != "darwin" {
		tests = append(tests, displayCase{"macos", "", ErrDisplayUnavailable})
	}
	if runtime.GOOS != "windows" {
		tests = append(tests, displayCase{"windows", "", ErrDisplayUnavailable})
	}
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		tests = append(tests, displayCase{"auto", "log", nil}, displayCase{"", "log", nil})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDisplay(tt.name, log)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewDisplay(%q) = %v, want %v", tt.name, err, tt.wantErr)
			}
			if err == nil && d.Name() != tt.wantName {
				t.Errorf("NewDisplay(%q).Name() = %q, want %q", tt.name, d.Name(), tt.wantName)
			}
		})
	}
}

func TestLogDisplay(t *testing.T) {
	var buf bytes.Buffer
	d, err := NewDisplay("log", slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	toast := Toast{App: "weather", Text1: "Rain", Text2: "at 5 pm", Param: "/Page.xaml?id=1", Sound: "/Sounds/drop.wav", Silent: true}
	if err := d.Show(context.Background(), toast); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	for k, want := range map[string]any{
		"msg": "toast", "app": "weather", "text1": "Rain", "text2": "at 5 pm",
		"param": "/Page.xaml?id=1", "sound": "/Sounds/drop.wav", "silent": true,
	} {
		if got[k] != want {
			t.Errorf("log field %s = %v, want %v", k, got[k], want)
		}
	}
}

type notifyCall struct {
	AppName  string
	Replaces uint32
	Icon     string
	Summary  string
	Body     string
	Actions  []string
	Hints    map[string]any
	Expire   int32
}

// fakeNotifications is a notification server: it records each Notify.
type fakeNotifications struct{ calls chan notifyCall }

func (f *fakeNotifications) Notify(appName string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, expire int32) (uint32, *dbus.Error) {
	if summary == "fail" {
		return 0, dbus.NewError("org.freedesktop.Notifications.Error.Test", []any{"refused"})
	}
	h := map[string]any{}
	for k, v := range hints {
		h[k] = v.Value()
	}
	f.calls <- notifyCall{appName, replaces, icon, summary, body, actions, h, expire}
	return 42, nil
}

// serveNotifications claims org.freedesktop.Notifications on the bus.
func serveNotifications(t *testing.T, addr string) *fakeNotifications {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect server: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	f := &fakeNotifications{calls: make(chan notifyCall, 10)}
	if err := conn.Export(f, notifyPath, notifyName); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName = %v, %v", reply, err)
	}
	return f
}

func TestDBusDisplay(t *testing.T) {
	addr := dbustest.SessionBus(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// A bus without a notification server: auto falls back to the log.
	d, err := NewDisplay("auto", log)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "log" {
		t.Errorf("auto without a notification server chose %q, want log", d.Name())
	}

	server := serveNotifications(t, addr)
	for _, name := range []string{"dbus", "auto"} {
		d, err := NewDisplay(name, log)
		if err != nil {
			t.Fatalf("NewDisplay(%q): %v", name, err)
		}
		if d.Name() != "dbus" {
			t.Fatalf("NewDisplay(%q).Name() = %q, want dbus", name, d.Name())
		}
		if c, ok := d.(io.Closer); !ok {
			t.Errorf("dbus display is not an io.Closer")
		} else {
			t.Cleanup(func() { _ = c.Close() })
		}
	}

	d, err = NewDisplay("dbus", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.(io.Closer).Close() })
	tests := []struct {
		name  string
		toast Toast
		want  notifyCall
	}{
		{
			name:  "plain",
			toast: Toast{App: "weather", Text1: "Rain", Text2: "at 5 pm"},
			want: notifyCall{
				AppName: "Herald: weather", Summary: "Rain", Body: "at 5 pm", Actions: []string{},
				Hints: map[string]any{"urgency": byte(1)}, Expire: 10000,
			},
		},
		{
			name:  "param and sound file",
			toast: Toast{App: "chat", Text1: "Ann", Text2: "hi", Param: "/Chat.xaml?from=ann", Sound: "/usr/share/sounds/ding.oga"},
			want: notifyCall{
				AppName: "Herald: chat", Summary: "Ann", Body: "hi", Actions: []string{},
				Hints:  map[string]any{"urgency": byte(1), "x-herald-param": "/Chat.xaml?from=ann", "sound-file": "/usr/share/sounds/ding.oga"},
				Expire: 10000,
			},
		},
		{
			name:  "silent",
			toast: Toast{App: "news", Text1: "Headline", Sound: "/usr/share/sounds/ding.oga", Silent: true},
			want: notifyCall{
				AppName: "Herald: news", Summary: "Headline", Actions: []string{},
				Hints:  map[string]any{"urgency": byte(0), "suppress-sound": true},
				Expire: 10000,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.Show(ctx, tt.toast); err != nil {
				t.Fatalf("Show: %v", err)
			}
			select {
			case got := <-server.calls:
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Notify got\n%+v\nwant\n%+v", got, tt.want)
				}
			case <-ctx.Done():
				t.Fatal("the notification server received nothing")
			}
		})
	}

	t.Run("server error", func(t *testing.T) {
		err := d.Show(context.Background(), Toast{App: "x", Text1: "fail"})
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("Show = %v, want the server's error", err)
		}
	})
	t.Run("reconnects", func(t *testing.T) {
		dd := d.(*dbusDisplay)
		dd.mu.Lock()
		_ = dd.conn.Close()
		dd.mu.Unlock()
		if err := d.Show(context.Background(), Toast{App: "again", Text1: "t"}); err != nil {
			t.Fatalf("Show after the connection dropped: %v", err)
		}
		select {
		case got := <-server.calls:
			if got.AppName != "Herald: again" {
				t.Errorf("got %+v", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing received after reconnecting")
		}
	})
}

func ExampleNewDisplay() {
	d, err := NewDisplay("log", slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = d.Show(context.Background(), Toast{App: "weather", Text1: "Rain", Text2: "at 5 pm"})
	// Output: level=INFO msg=toast app=weather text1=Rain text2="at 5 pm" param="" sound="" silent=false
}
