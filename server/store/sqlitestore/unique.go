//go:build cgo

package sqlitestore

import (
	"errors"

	"github.com/mattn/go-sqlite3"
)

// isUnique reports a write refused for a key already taken.
func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}
