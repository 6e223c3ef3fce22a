//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockDir takes the data directory's lock (an flock on LockName, released
// when the process ends, however it ends), or fails when another process holds
// it. A server whose rankings live in its own memory must be the only writer of
// its audit log: two of them hand out the same versions, and the log keeps
// only the first of each.
func LockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another leaderboard server (it holds %s): "+
				"stop it, or give this one its own --data-dir", dir, path)
		}
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	return func() { f.Close() }, nil
}
