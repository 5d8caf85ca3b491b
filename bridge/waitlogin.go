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
	stop, err := serveWaiting(ctx, cfg, log, ErrNoLogin, fmt.Sprintf("bilibridge is running but has no Bilibili login yet.\n\nRun `bilibridge login` (in Docker: docker compose run --rm bilibridge login) and scan the QR code\nwith the Bilibili app; the bridge starts polling as soon as %s appears.\n", cfg.CredentialsFile))
	if err != nil {
		return nil, err
	}
	// The bridge binds the same address next: let it go first.
	defer stop()
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

// serveWaiting serves HTTP_ADDR while the bridge cannot start: /healthz
// answers ok, so that a container is alive rather than restarting in a
// loop; /readyz answers why; / shows page. stop releases the address.
func serveWaiting(ctx context.Context, cfg *config.Config, log *slog.Logger, why error, page string) (stop func(), err error) {
	if cfg.HTTPAddr == "" {
		return func() {}, nil
	}
	srv := NewHTTPServer(cfg.HTTPAddr, prometheus.NewRegistry(), func() error { return why }, log)
	srv.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	return func() { cancel(); <-done }, nil
}

// ErrLoginRejected is a login Bilibili refuses when the bridge starts,
// of an account it cannot name (the cookies carry no uid): nothing can be
// polled until the login is replaced.
var ErrLoginRejected = errors.New("login rejected by Bilibili")

// loginRejected says how to replace the login that came from file, or
// from the environment when file is "".
func loginRejected(file string) error {
	if file == "" {
		return fmt.Errorf("%w: BILI_SESSDATA/BILI_JCT in the environment are not accepted (expired or mistyped): set fresh ones, or unset them and run `bilibridge login`", ErrLoginRejected)
	}
	return fmt.Errorf("%w: the login in %s has expired: run `bilibridge login` to log in again", ErrLoginRejected, file)
}

// Idle keeps a bridge that cannot start up, without polling, until ctx
// ends: the reason is logged once and answered on /readyz and /, and
// /healthz says the process is alive. A container whose login Bilibili
// refuses would otherwise restart in a loop, each start refused again.
func Idle(ctx context.Context, cfg *config.Config, log *slog.Logger, why error) error {
	log.Error("not polling: " + why.Error())
	stop, err := serveWaiting(ctx, cfg, log, why, "bilibridge is running but cannot poll:\n\n"+why.Error()+"\n")
	if err != nil {
		return err
	}
	defer stop()
	<-ctx.Done()
	return nil
}
