package ui

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// keyBytes is the random length of a page key.
const keyBytes = 32

// KeyFile is the name of the file in the data directory that keeps the
// page's key.
const KeyFile = "ui.key"

// NewKey returns a random page key.
func NewKey() string {
	b := make([]byte, keyBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// LoadKey reads the page key kept in path, making one (mode 0600, readable
// by the daemon's user only) when there is none. Deleting the file makes a
// new key at the next start and ends every session of the old one.
func LoadKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k := NewKey()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("ui: creating the key file: %w", err)
		}
		_, werr := f.WriteString(k + "\n")
		if err := errors.Join(werr, f.Close()); err != nil {
			return "", fmt.Errorf("ui: writing the key file: %w", err)
		}
		return k, nil
	case err != nil:
		return "", fmt.Errorf("ui: reading the key file: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if raw, err := base64.RawURLEncoding.DecodeString(k); err != nil || len(raw) < 16 {
		return "", fmt.Errorf("ui: the key file %s holds no key (16 or more random bytes in base64url); delete it to make a new one", path)
	}
	// An earlier version, or a hand, may have left it readable by others.
	if err := os.Chmod(path, 0o600); err != nil {
		return "", fmt.Errorf("ui: the key file: %w", err)
	}
	return k, nil
}

// Key returns the page's key.
func (u *UI) Key() string { return u.cfg.Key }

// PageURL is the address to open the page at: base (the UI's
// "http://host:port/"), the phone to show (for the emulator; "" for the
// first), and the key in the fragment.
func (u *UI) PageURL(base, phone string) string {
	if phone != "" {
		base += "?phone=" + url.QueryEscape(phone)
	}
	return base + KeyFragment + u.cfg.Key
}
