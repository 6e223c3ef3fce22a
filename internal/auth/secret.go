package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SecretFile is the name of the secret in the data directory.
const SecretFile = "auth-secret"

// SecretPath is the secret file of dataDir.
func SecretPath(dataDir string) string { return filepath.Join(dataDir, SecretFile) }

// ReadSecret reads the secret file of dataDir: its text, surrounding white
// space removed, is the secret (the same string `--auth-secret` would take).
func ReadSecret(dataDir string) ([]byte, error) {
	b, err := os.ReadFile(SecretPath(dataDir))
	if err != nil {
		return nil, err
	}
	s := []byte(strings.TrimSpace(string(b)))
	if err := CheckSecret(s); err != nil {
		return nil, fmt.Errorf("%s: %w", SecretPath(dataDir), err)
	}
	return s, nil
}

// LoadOrCreateSecret returns the secret of dataDir, creating the directory
// (0700) and the file (0600, 32 random bytes as 64 hex characters) when there
// is none yet; created says whether it did.
func LoadOrCreateSecret(dataDir string) (secret []byte, created bool, err error) {
	s, err := ReadSecret(dataDir)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return nil, false, fmt.Errorf("cannot read the auth secret: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("cannot create the data directory (--data-dir) for the auth secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, false, err
	}
	s = []byte(hex.EncodeToString(raw[:]))
	path := SecretPath(dataDir)
	// O_EXCL: of two processes starting at once, one creates and the other reads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		s, err := ReadSecret(dataDir)
		return s, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot create the auth secret: %w", err)
	}
	if _, err := f.Write(append(s, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("cannot write the auth secret: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("cannot write the auth secret: %w", err)
	}
	return s, true, nil
}
