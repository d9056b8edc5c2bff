package server_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// fromAddr is an HTTP client whose connections come from the loopback
// address ip, so the service sees another sender address.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// TestSlowBodiesFromOneAddress opens a few hundred connections from
// 127.0.0.1, each sending the headers of a 3,000-byte notification to a
// made-up channel and then nothing. The address gets its 64 body reads and
// 503 for the rest; it holds no in-flight slot, so a sender on 127.0.0.2
// is answered 200 Received throughout and its device gets every
// notification.
func TestSlowBodiesFromOneAddress(t *testing.T) {
	const (
		slow        = 300
		maxInFlight = 128 // fewer than the slow connections
	)
	svc := startPlain(t, withDB(t, server.ServeConfig{
		// Long enough that no slow connection times out during the test:
		// what is measured is what the service does while they hang.
		ReadTimeout: time.Minute,
		Server:      server.Config{Limits: server.Limits{MaxInFlight: maxInFlight}},
	}))
	addr := svc.Addr().String()
	victim := mustDial(t, svc.URL())
	vch := victim.open("victim", "")
	victim.bind(vch.ChannelID, true, false)

	var refused, other atomic.Int32
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, slow)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	for i := range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %sbogus%d HTTP/1.1\r\nHost: %s\r\nX-NotificationClass: 3\r\nContent-Length: 3000\r\n\r\n", server.ThrottledPath, i, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return // closed at the end of the test, unanswered
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
				refused.Add(1)
			} else {
				other.Add(1)
			}
		}()
	}
	want := int32(slow - server.DefaultMaxBodyReadsPerSource)
	testenv.Eventually(t, 30*time.Second, "the address's surplus connections answered 503", func() bool {
		return refused.Load()+other.Load() >= want
	})
	if got := refused.Load(); got != want || other.Load() != 0 {
		t.Fatalf("slow connections answered 503 with Retry-After: %d, otherwise: %d; want %d and 0", got, other.Load(), want)
	}

	// Another address is served as if nothing were happening.
	legit := fromAddr("127.0.0.2")
	const sent = 20
	received := 0
	for i := range sent {
		id := fmt.Sprintf("legit-%d", i)
		r := postMPNS(t, legit, http.MethodPost, vch.URI, mpnsHeaders("toast", "2", id), toastXML)
		if statusOf(r) != "200 Received" {
			t.Fatalf("legitimate sender, notification %d: %s (%s) %v", i, statusOf(r), r.body, r.network)
		}
		received++
		if n := victim.nextNotification(); n.MessageID != id {
			t.Fatalf("device got %+v, want %s", n, id)
		}
	}
	t.Logf("slow connections %d: %d reading, %d answered 503; legitimate sender: sent %d, 200 Received %d, delivered %d",
		slow, slow-int(refused.Load()), refused.Load(), sent, received, received)

	// The same address, while its reads are used up, is refused at once.
	r := postMPNS(t, nil, http.MethodPost, vch.URI, mpnsHeaders("toast", "2", "same-address"), toastXML)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("127.0.0.1 with its reads used up: %d %q; want 503 with Retry-After", r.code, r.body)
	}
	// Once the slow connections go, the address is served again.
	for _, c := range conns {
		c.Close()
	}
	testenv.Eventually(t, 30*time.Second, "127.0.0.1 served again", func() bool {
		r := postMPNS(t, nil, http.MethodPost, vch.URI, mpnsHeaders("toast", "2", "again"), toastXML)
		return statusOf(r) == "200 Received"
	})
	if n := victim.nextNotification(); n.MessageID != "again" {
		t.Fatalf("device got %+v", n)
	}
}

// TestSlowBodiesFromManyAddresses spreads slow bodies over 20 loopback
// addresses, each under its own bound, so none is refused: every one is
// held reading. They still hold no in-flight slot (there are more of them
// than slots), so a sender on another address, and one on an attacking
// address with reads to spare, are answered 200 Received and their device
// gets every notification.
func TestSlowBodiesFromManyAddresses(t *testing.T) {
	const (
		addresses   = 20
		perAddress  = 30 // under DefaultMaxBodyReadsPerSource
		maxInFlight = 64 // fewer than the slow connections
	)
	svc := startPlain(t, withDB(t, server.ServeConfig{
		ReadTimeout: time.Minute,
		Server:      server.Config{Limits: server.Limits{MaxInFlight: maxInFlight}},
	}))
	addr := svc.Addr().String()
	victim := mustDial(t, svc.URL())
	vch := victim.open("victim", "")
	victim.bind(vch.ChannelID, true, false)

	var answered atomic.Int32
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	for a := range addresses {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.1.%d", 1+a))}}
		for i := range perAddress {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("address %d, connection %d: %v", a, i, err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "POST %sbogus%d-%d HTTP/1.1\r\nHost: %s\r\nX-NotificationClass: 3\r\nContent-Length: 3000\r\n\r\n", server.ThrottledPath, a, i, addr)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					resp.Body.Close()
					answered.Add(1)
				}
			}()
		}
	}
	// Legitimate senders, one on an address of its own and one on an
	// attacking address, while the slow connections hang.
	senders := []string{"127.0.0.2", "127.0.1.1"}
	const sent = 10
	received := map[string]int{}
	for _, ip := range senders {
		c := fromAddr(ip)
		for i := range sent {
			id := fmt.Sprintf("%s-%d", ip, i)
			r := postMPNS(t, c, http.MethodPost, vch.URI, mpnsHeaders("toast", "2", id), toastXML)
			if statusOf(r) != "200 Received" {
				t.Fatalf("sender %s, notification %d during the attack: %s (%s) %v", ip, i, statusOf(r), r.body, r.network)
			}
			received[ip]++
			if n := victim.nextNotification(); n.MessageID != id {
				t.Fatalf("device got %+v, want %s", n, id)
			}
		}
	}
	if n := answered.Load(); n != 0 {
		t.Fatalf("%d slow connections answered; each address is under its bound, so none should be", n)
	}
	t.Logf("slow connections %d from %d addresses: %d held reading, %d answered; legitimate senders (127.0.0.2, and 127.0.1.1 among the attackers): sent %d, 200 Received %d, delivered %d",
		addresses*perAddress, addresses, addresses*perAddress-int(answered.Load()), answered.Load(), 2*sent, received["127.0.0.2"]+received["127.0.1.1"], received["127.0.0.2"]+received["127.0.1.1"])
}
