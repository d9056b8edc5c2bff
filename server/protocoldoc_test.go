package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/protodoc"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// TestServiceFollowsProtocolPage drives the real service with a device
// written from docs/protocol.md alone, in plain JSON and the page's proof
// construction (the standard library, not wire's code): it enrols, proves
// itself, checks the welcome's proof, and once retired checks the proof of
// its refusal. A proof padded as standard base64url would be is refused.
func TestServiceFollowsProtocolPage(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	type frame struct {
		Type    string `json:"type"`
		Version int    `json:"version"`
		Nonce   string `json:"nonce"`
		ID      string `json:"id"`
		Secret  string `json:"secret"`
		Proof   string `json:"proof"`
		Reason  string `json:"reason"`
	}
	// exchange opens a connection, reads the challenge, sends the hello
	// hello builds from its nonce, and returns the answer and how the
	// service closed, if it did.
	exchange := func(hello func(challengeNonce string) string) (frame, string, *websocket.CloseError) {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(svc.URL()), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var ch frame
		if err := ws.ReadJSON(&ch); err != nil || ch.Type != "challenge" || ch.Version != 2 || len(ch.Nonce) != 43 {
			t.Fatalf("challenge %+v, %v", ch, err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(hello(ch.Nonce))); err != nil {
			t.Fatal(err)
		}
		var ans frame
		_, data, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ans, ch.Nonce, ce
		} else if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &ans); err != nil {
			t.Fatal(err)
		}
		if ans.Type == "refused" {
			_, _, err := ws.ReadMessage()
			errors.As(err, &ce)
		}
		return ans, ch.Nonce, ce
	}
	newNonce := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}

	// Enrolment: a bare hello; the welcome carries id and secret, no proof.
	enrolled, _, ce := exchange(func(string) string { return `{"type":"hello","version":2,"last_seq":0}` })
	if ce != nil || enrolled.Type != "welcome" || len(enrolled.Secret) != 43 || len(enrolled.ID) != 22 || enrolled.Proof != "" {
		t.Fatalf("enrolment answered %+v, close %v", enrolled, ce)
	}
	id, key := enrolled.ID, protodoc.Key(enrolled.Secret)

	proven := func(dn string, proof func(sn string) string) func(string) string {
		return func(sn string) string {
			return `{"type":"hello","version":2,"id":"` + id + `","nonce":"` + dn + `","proof":"` + proof(sn) + `","last_seq":0}`
		}
	}
	helloProof := func(dn string) func(string) string {
		return func(sn string) string { return protodoc.Proof(key, protodoc.Message(protodoc.LabelHello, sn, dn, id)) }
	}

	dn := newNonce()
	w, sn, ce := exchange(proven(dn, helloProof(dn)))
	if ce != nil || w.Type != "welcome" || w.ID != id || w.Secret != "" ||
		w.Proof != protodoc.Proof(key, protodoc.Message(protodoc.LabelWelcome, sn, dn, id)) {
		t.Fatalf("proven hello answered %+v, close %v", w, ce)
	}

	dn = newNonce()
	if ans, _, ce := exchange(proven(dn, func(sn string) string { return helloProof(dn)(sn) + "=" })); ce == nil || ce.Code != wire.CloseProtocol || ans.Type != "" {
		t.Fatalf("padded proof answered %+v, close %v; want 4002", ans, ce)
	}

	if err := svc.RetireDevice(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	dn = newNonce()
	r, sn, ce := exchange(proven(dn, helloProof(dn)))
	if r.Type != "refused" || r.Reason != "retired" ||
		r.Proof != protodoc.Proof(key, protodoc.Message(protodoc.LabelRefused, sn, dn, id, r.Reason)) ||
		ce == nil || ce.Code != wire.CloseUnauthorized || ce.Text != "retired" {
		t.Fatalf("retired device answered %+v, close %v", r, ce)
	}
}
