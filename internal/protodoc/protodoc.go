// Package protodoc reads the device protocol's known-answer vectors from
// docs/protocol.md and builds the proofs the way that page words them,
// with the standard library alone. Tests on both ends of the link check
// the code against it, so the page an outside implementer reads cannot
// drift from what the daemon and the service do.
package protodoc

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// Names are the lines of the vectors block, every one required.
var Names = []string{
	"secret", "id", "challenge_nonce", "hello_nonce", "key",
	"hello_message", "hello_proof", "welcome_message", "welcome_proof",
	"refused_reason", "refused_message", "refused_proof",
}

// The labels the page gives each proof.
const (
	LabelHello   = "herald/2 hello"
	LabelWelcome = "herald/2 welcome"
	LabelRefused = "herald/2 refused"
)

// Read returns the vectors of the page at path, the fenced block of
// "name: value" lines that starts with "secret:", and the lines of the
// fenced block after it, the same exchange as frames.
func Read(path string) (map[string]string, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("protocol page: %w", err)
	}
	defer f.Close()
	var blocks [][]string
	var cur []string
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, cur)
			}
			in, cur = !in, nil
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("protocol page: %w", err)
	}
	for i, b := range blocks {
		if len(b) == 0 || !strings.HasPrefix(b[0], "secret:") {
			continue
		}
		v := map[string]string{}
		for _, line := range b {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, nil, fmt.Errorf("vectors: line %q is not name: value", line)
			}
			if _, dup := v[name]; dup {
				return nil, nil, fmt.Errorf("vectors: %s twice", name)
			}
			v[name] = strings.TrimSpace(value)
		}
		for _, n := range Names {
			if v[n] == "" {
				return nil, nil, fmt.Errorf("vectors: no %s", n)
			}
		}
		if i+1 >= len(blocks) {
			return nil, nil, fmt.Errorf("vectors: no block of frames after them")
		}
		return v, blocks[i+1], nil
	}
	return nil, nil, fmt.Errorf("%s has no vectors block (a fenced block starting with \"secret:\")", path)
}

// Key is the device's key as the page words it: the raw SHA-256 of the
// secret's text.
func Key(secret string) []byte {
	k := sha256.Sum256([]byte(secret))
	return k[:]
}

// Message is what a proof authenticates: every part, the label first,
// preceded by its length as 4 bytes big-endian, the nonces and id as the
// text sent.
func Message(label string, parts ...string) []byte {
	var b []byte
	for _, p := range append([]string{label}, parts...) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// Proof is HMAC-SHA256 of message under key, unpadded base64url.
func Proof(key, message []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(message)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
