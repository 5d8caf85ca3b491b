// Package account keeps a Bilibili login alive: the web QR login, the
// credentials file, and the daily cookie refresh, ordered so that a crash
// at any step leaves a file that still logs in.
package account

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/config"
)

// WriteCredentials writes cr to path atomically with mode 0600: a
// temporary file in the same directory, synced, then renamed over path,
// so a reader never sees half a file.
func WriteCredentials(path string, cr bilibili.Credentials) error {
	b, err := json.MarshalIndent(cr, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.json")
	if err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself survives a power cut
		d.Close()
	}
	return nil
}

// CheckDir makes sure WriteCredentials can write in dir: it makes dir and
// creates and removes a file there. A login checks it before showing the
// QR code, so that an unwritable directory fails before the person
// logging in has scanned and confirmed on their phone rather than after.
func CheckDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".credentials-check-*")
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Remove(f.Name())
}

// ReadCredentials reads a credentials file.
func ReadCredentials(path string) (bilibili.Credentials, error) {
	return config.ReadCredentials(path)
}
