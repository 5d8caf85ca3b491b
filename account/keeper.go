package account

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"
)

// Keeper keeps a running client's login current: it loads the
// credentials file again when it changes (a new `bilibridge login` while
// the bridge runs), and refreshes the cookies when Bilibili asks (checked
// at start and then daily).
type Keeper struct {
	API  RefreshAPI
	File string
	// Refresh enables the cookie refresh; it needs the file (the new
	// cookies must be persisted) and a refresh token.
	Refresh bool
	// Leader, when set, limits the refresh to the process that polls the
	// account: a refresh ends the old session, which other processes may
	// still use (they pick the new one up from a shared file).
	Leader func() bool
	// Changed is called after the credentials changed (wake the poller).
	Changed func()
	Log     *slog.Logger
	// CheckEvery is how often the file is looked at; default 5s.
	CheckEvery time.Duration
	// RefreshEvery is how often cookie/info is asked; default 24h.
	RefreshEvery time.Duration
	// Refresher does the refresh; default one over API and File.
	Refresher *Refresher
}

// Run watches until ctx ends.
func (k *Keeper) Run(ctx context.Context) error {
	if k.CheckEvery <= 0 {
		k.CheckEvery = 5 * time.Second
	}
	if k.RefreshEvery <= 0 {
		k.RefreshEvery = 24 * time.Hour
	}
	if k.Log == nil {
		k.Log = slog.New(slog.DiscardHandler)
	}
	if k.Refresher == nil {
		k.Refresher = &Refresher{API: k.API, File: k.File, Log: k.Log}
	}
	lastMod := k.modTime()
	nextRefresh := time.Now()
	t := time.NewTicker(k.CheckEvery)
	defer t.Stop()
	for {
		if mod := k.modTime(); !mod.Equal(lastMod) {
			lastMod = mod
			k.reload()
		}
		if k.Refresh && !time.Now().Before(nextRefresh) && (k.Leader == nil || k.Leader()) {
			next := k.RefreshEvery
			if !k.refresh(ctx) {
				next = min(next, time.Hour) // a blip must not cost a day
			}
			nextRefresh = time.Now().Add(next)
			lastMod = k.modTime() // our own write is not news
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (k *Keeper) modTime() time.Time {
	st, err := os.Stat(k.File)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

func (k *Keeper) reload() {
	cr, err := ReadCredentials(k.File)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			k.Log.Warn("credentials file changed but cannot be used", "file", k.File, "err", err)
		}
		return
	}
	if cr == k.API.Credentials() {
		return
	}
	k.API.SetCredentials(cr)
	k.Log.Info("new credentials file picked up", "file", k.File)
	if k.Changed != nil {
		k.Changed()
	}
}

// refresh reports whether the check (and the refresh, if due) worked.
func (k *Keeper) refresh(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	changed, err := k.Refresher.RefreshIfNeeded(ctx)
	switch {
	case err != nil:
		k.Log.Warn("cookie refresh failed; will try again within the hour", "err", err)
		return false
	case changed:
		k.Log.Info("cookies refreshed", "file", k.File)
		if k.Changed != nil {
			k.Changed()
		}
	}
	return true
}
