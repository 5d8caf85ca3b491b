package account

import (
	"context"
	"crypto/rsa"
	"fmt"
	"log/slog"

	"github.com/bilibridge/bilibridge/bilibili"
)

// RefreshAPI is the part of the Bilibili client the refresh uses.
type RefreshAPI interface {
	Credentials() bilibili.Credentials
	SetCredentials(bilibili.Credentials)
	CookieInfo(ctx context.Context) (bool, error)
	RefreshCookies(ctx context.Context, key *rsa.PublicKey) (bilibili.Credentials, error)
	ConfirmRefresh(ctx context.Context, oldRefreshToken string) error
}

// Refresher renews an account's cookies when Bilibili asks for it.
type Refresher struct {
	API RefreshAPI
	// File is where the credentials live (BILI_CREDENTIALS_FILE).
	File string
	// Key encrypts the correspondPath; nil means Bilibili's own.
	Key *rsa.PublicKey
	Log *slog.Logger
}

// RefreshIfNeeded asks cookie/info and, when Bilibili says so, runs the
// refresh. It reports whether the cookies changed.
//
// The order is what makes it crash-safe: the new session is persisted
// before the old one is confirmed away. A crash before the file is written
// leaves the old, still valid, cookies on disk; a crash after leaves the
// new ones, also valid (the old session only ends at the confirmation).
func (r *Refresher) RefreshIfNeeded(ctx context.Context) (bool, error) {
	if r.API.Credentials().RefreshToken == "" {
		return false, nil // nothing to refresh with: log in to enable it
	}
	needed, err := r.API.CookieInfo(ctx)
	if err != nil {
		return false, fmt.Errorf("cookie/info: %w", err)
	}
	if !needed {
		return false, nil
	}
	old := r.API.Credentials()
	fresh, err := r.API.RefreshCookies(ctx, r.Key)
	if err != nil {
		return false, fmt.Errorf("refreshing cookies: %w", err)
	}
	if err := WriteCredentials(r.File, fresh); err != nil {
		// The old session is still valid: keep using it.
		return false, fmt.Errorf("saving refreshed cookies (the old ones stay in use): %w", err)
	}
	r.API.SetCredentials(fresh)
	if err := r.API.ConfirmRefresh(ctx, old.RefreshToken); err != nil {
		// Not fatal: the new session works either way; the old one
		// expires on its own.
		if r.Log != nil {
			r.Log.Warn("confirming the cookie refresh", "err", err)
		}
	}
	return true, nil
}
