package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilibridge/bilibridge/config"
)

// ErrNoLogin is why the bridge is not ready while it waits for a login.
var ErrNoLogin = errors.New("no login: run `bilibridge login` and scan the QR code with the Bilibili app (in Docker: docker compose run --rm bilibridge login), or set BILI_SESSDATA and BILI_JCT; `bilibridge demo` shows the bridge without an account")

// WaitForLogin waits until the configuration has a Bilibili login (the
// credentials file that `bilibridge login` writes appears), and returns
// it. Meanwhile it serves HTTP_ADDR so that a container is alive rather
// than crash-looping: /healthz answers ok, /readyz and / say that a login
// is missing. It says so in the log once.
func WaitForLogin(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]config.Login, error) {
	logins, err := cfg.Logins()
	if !errors.Is(err, config.ErrNoCredentials) {
		return logins, err
	}
	log.Warn(ErrNoLogin.Error(), "credentials_file", cfg.CredentialsFile)
	if cfg.HTTPAddr != "" {
		srv := NewHTTPServer(cfg.HTTPAddr, prometheus.NewRegistry(), func() error { return ErrNoLogin }, log)
		srv.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "bilibridge is running but has no Bilibili login yet.\n\nRun `bilibridge login` (in Docker: docker compose run --rm bilibridge login) and scan the QR code\nwith the Bilibili app; the bridge starts polling as soon as %s appears.\n", cfg.CredentialsFile)
		}))
		if err := srv.Listen(); err != nil {
			return nil, err
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Run(sctx) }()
		// The bridge binds the same address next: let it go first.
		defer func() { stop(); <-done }()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		logins, err := cfg.Logins()
		switch {
		case err == nil:
			log.Info("login found; starting", "accounts", len(logins))
			return logins, nil
		case !errors.Is(err, config.ErrNoCredentials):
			// A file half-written, or unreadable: say so, keep waiting.
			log.Warn("the credentials file cannot be used yet", "err", err)
		}
	}
}
