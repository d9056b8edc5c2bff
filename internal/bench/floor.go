package bench

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/wire"
)

// floor is a service of the same shape as heraldsvc that keeps nothing:
// a POST to a channel URI becomes one notify frame on the device's
// websocket, with no store, no queue and no acknowledgements. Its figures,
// taken the same way in the same run, are what this machine allows any
// such service, so every figure of the real one has a ratio to it.
//
// It speaks just enough of the device protocol for channel.Link:
// challenge, hello (proof checked), welcome (proof made), register. A
// device's secret is derived from its id with a key of the floor's own,
// so that a device coming back is known without anything kept.
//
// With a durableStore it is the durable floor (durable.go): each
// notification is committed before it is sent and answered, and each ack
// deletes what it covers.
type floor struct {
	key     []byte
	srv     *http.Server
	ln      net.Listener
	url     string
	durable *durableStore // nil: the floor keeps nothing
	// wg counts the goroutines close waits for: the server's, each
	// device's and each POST's once it has found its device.
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  map[string]*floorConn
	open   map[*websocket.Conn]bool // every upgraded connection, handshake or not
}

// floorConn is one device's connection; mu makes its writes one at a time.
type floorConn struct {
	mu   sync.Mutex
	conn *websocket.Conn
	seq  uint64
	// written is the last number sent or given up on, and turn is
	// signalled when it moves: the durable floor's commits answer in any
	// order, and each waits its turn to write (sendInTurn).
	written uint64
	turn    sync.Cond
}

// floorPath is where the floor's channel URIs live: floorPath + device id.
const floorPath = "/floor/"

// maxFloorBody bounds a POST like the service's MPNS limit: a raw
// notification of at most 3 KiB, with room to spare.
const maxFloorBody = 8 << 10

var floorUpgrader = websocket.Upgrader{ReadBufferSize: 512, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{}}

// startFloor listens on a loopback port and serves until close. With a
// dir it is the durable floor, its database in dir.
func startFloor(dir string) (*floor, error) {
	f := &floor{key: make([]byte, 32), conns: map[string]*floorConn{}, open: map[*websocket.Conn]bool{}}
	rand.Read(f.key)
	if dir != "" {
		d, err := openDurable(dir)
		if err != nil {
			return nil, err
		}
		f.durable = d
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if f.durable != nil {
			f.durable.close()
		}
		return nil, fmt.Errorf("bench: floor: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/device", f.device)
	mux.HandleFunc("POST "+floorPath+"{id}", f.post)
	mux.HandleFunc("GET /metrics", f.metrics)
	f.ln, f.url = ln, "http://"+ln.Addr().String()
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.srv.Serve(ln) // ends with close
	}()
	return f, nil
}

// close stops serving, ends every connection and waits for every
// goroutine of the floor; the durable floor's committer last, once
// nothing can hand it more.
func (f *floor) close() {
	f.srv.Close()
	f.mu.Lock()
	f.closed = true
	f.conns = nil
	for c := range f.open {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	if f.durable != nil {
		f.durable.close()
	}
}

// secret is device id's secret, derived rather than kept.
func (f *floor) secret(id string) string {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// device runs one device's connection: handshake, then reads until it
// ends, answering registers and dropping everything else (acks too,
// unless the floor is durable).
func (f *floor) device(w http.ResponseWriter, r *http.Request) {
	conn, err := floorUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	// The server does not wait for hijacked connections: the floor does.
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.open[conn] = true
	f.wg.Add(1)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.open, conn)
		f.mu.Unlock()
		f.wg.Done()
	}()
	conn.SetReadLimit(wire.MaxFrameSize)
	id, lastSeq, err := f.handshake(conn)
	if err != nil {
		return
	}
	// Numbering goes on from what the device has applied, as the
	// service's does, so that it takes what follows as new.
	fc := &floorConn{conn: conn, seq: lastSeq, written: lastSeq}
	fc.turn.L = &fc.mu
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	old := f.conns[id]
	f.conns[id] = fc
	f.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	defer func() {
		f.mu.Lock()
		if f.conns[id] == fc {
			delete(f.conns, id)
		}
		f.mu.Unlock()
	}()
	conn.SetReadDeadline(time.Time{})
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		fr, err := wire.DecodeDevice(data)
		if err != nil {
			return
		}
		switch fr := fr.(type) {
		case *wire.Register:
			fc.write(wire.Registered{Type: wire.TypeRegistered, ReqID: fr.ReqID, ChannelID: id, URI: f.url + floorPath + id})
		case *wire.Ack:
			if f.durable != nil {
				f.durable.ack(id, fr.Seq)
			}
		}
	}
}

var errFloorProof = errors.New("bench: floor: wrong proof")

func (f *floor) handshake(conn *websocket.Conn) (string, uint64, error) {
	nonce := wire.NewNonce()
	b, err := wire.Encode(wire.Challenge{Type: wire.TypeChallenge, Version: wire.Version, Nonce: nonce})
	if err != nil {
		return "", 0, err
	}
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return "", 0, err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		return "", 0, err
	}
	fr, err := wire.DecodeDevice(data)
	if err != nil {
		return "", 0, err
	}
	h, ok := fr.(*wire.Hello)
	if !ok {
		return "", 0, errors.New("bench: floor: first frame is not hello")
	}
	welcome := wire.Welcome{Type: wire.TypeWelcome, ID: h.ID, MinHeartbeat: 60, MaxIdle: 3 * 3600}
	if h.ID == "" {
		welcome.ID = wire.NewNonce()
		welcome.Secret = f.secret(welcome.ID)
	} else {
		key := wire.DeviceKey(f.secret(h.ID))
		if !wire.ProofEqual(h.Proof, wire.HelloProof(key, nonce, h.Nonce, h.ID)) {
			return "", 0, errFloorProof
		}
		welcome.Proof = wire.WelcomeProof(key, nonce, h.Nonce, h.ID)
	}
	if b, err = wire.Encode(welcome); err != nil {
		return "", 0, err
	}
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return "", 0, err
	}
	return welcome.ID, h.LastSeq, nil
}

// write sends one frame; the connection's one writer at a time.
func (fc *floorConn) write(v any) error {
	b, err := wire.Encode(v)
	if err != nil {
		return err
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return fc.conn.WriteMessage(websocket.TextMessage, b)
}

// post writes the body as one raw notification to the device now, or
// answers as MPNS does for a device not connected.
func (f *floor) post(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFloorBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	f.mu.Lock()
	fc := f.conns[id]
	if fc != nil {
		f.wg.Add(1) // not closed, or conns would be nil
	}
	f.mu.Unlock()
	if fc == nil {
		w.Header().Set(mpns.HeaderDeviceConnectionStatus, "Disconnected")
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	defer f.wg.Done()
	if f.durable != nil {
		err = f.notifyDurable(fc, id, body)
	} else {
		err = fc.notify(id, body)
	}
	if err != nil {
		w.Header().Set(mpns.HeaderDeviceConnectionStatus, "Disconnected")
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	w.Header().Set(mpns.HeaderNotificationStatus, "Received")
	w.Header().Set(mpns.HeaderDeviceConnectionStatus, "Connected")
	w.WriteHeader(http.StatusOK)
}

// notify sends body as the device's next notification. The sequence
// number is taken and written under one hold, so frames reach the wire in
// sequence order and the device applies each once.
func (fc *floorConn) notify(channelID string, body []byte) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.seq++
	return fc.writeNotify(fc.seq, channelID, body)
}

// writeNotify writes notification seq; fc.mu is held.
func (fc *floorConn) writeNotify(seq uint64, channelID string, body []byte) error {
	b, err := wire.Encode(wire.Notify{Type: wire.TypeNotify, Notifications: []wire.Notification{
		{Seq: seq, ChannelID: channelID, Kind: string(mpns.KindRaw), Class: 3, Body: body}}})
	if err != nil {
		return err
	}
	fc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return fc.conn.WriteMessage(websocket.TextMessage, b)
}

// metrics answers with the one figure the tool waits on, in the
// service's name for it.
func (f *floor) metrics(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	n := len(f.conns)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE herald_service_connected_devices gauge\nherald_service_connected_devices %d\n", n)
}
