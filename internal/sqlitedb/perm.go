package sqlitedb

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// privateMode is the mode of a database file and of SQLite's -wal and -shm
// files beside it: they hold the device secret (or, on the service, every
// device's), which no other user may read whatever the directory allows.
const privateMode fs.FileMode = 0o600

// createPrivate creates file with mode 0600 if it does not exist, and takes
// group and other access away from it and from its -wal and -shm files if
// they exist (a database an earlier version created 0644). SQLite creates
// the -wal and -shm files with the database file's mode, so they follow.
func createPrivate(file string) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix modes; the directory's ACL decides
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, privateMode)
	if err != nil {
		return fmt.Errorf("sqlitedb: create %s: %w", file, err)
	}
	f.Close()
	for _, name := range []string{file, file + "-wal", file + "-shm"} {
		st, err := os.Stat(name)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return fmt.Errorf("sqlitedb: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(name, st.Mode().Perm()&privateMode); err != nil {
				return fmt.Errorf("sqlitedb: make %s private: %w", name, err)
			}
		}
	}
	return nil
}
