// Package app assembles bilibridge from its configuration: NATS, the
// Bilibili client, the poller and the HTTP server. cmd/bilibridge and the
// demo mode both run it; so do the end-to-end tests.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
)

// Options are what Run needs beyond the configuration.
type Options struct {
	Config      *config.Config
	Credentials bilibili.Credentials
	Logger      *slog.Logger
	// HTTPClient talks to Bilibili; default: a plain client.
	HTTPClient *http.Client
	// Started, when set, is called once everything runs.
	Started func(*App)
}

// App is a running bridge.
type App struct {
	Conn     *bridge.Conn
	Store    *bridge.Store
	Client   *bilibili.Client
	Poller   *poller.Poller
	Subjects events.Subjects
	UID      int64
	Registry *prometheus.Registry
	// HTTPAddr is where /healthz, /readyz, /metrics and the API listen, or
	// "" when HTTP_ADDR is empty.
	HTTPAddr string
}

// Ready reports whether NATS is connected and the Bilibili login valid.
func (a *App) Ready() error {
	if !a.Conn.Connected() {
		return errors.New("NATS is not connected")
	}
	if !a.Poller.Status().LoginValid {
		return errors.New("the Bilibili login has expired: run `bilibridge login`")
	}
	return nil
}

// Run runs the bridge until ctx ends, then shuts down in order: the
// poller stops, in-flight publishes finish, the NATS connection drains and
// the embedded server flushes and stops.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TelegramToken != "" || cfg.DiscordToken != "" {
		log.Warn("TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN is set, but this version has no Telegram or Discord sink yet; they are ignored")
	}
	conn, err := bridge.Connect(ctx, bridge.NATSConfig{
		URL: cfg.NATSURL, Creds: cfg.NATSCreds, Listen: cfg.NATSListen, DataDir: cfg.DataDir,
		Name: "bilibridge", Logger: log,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	if conn.Embedded() {
		if u := conn.ClientURL(); u != "" {
			log.Info("embedded NATS running", "url", u, "store", cfg.DataDir)
		} else {
			log.Info("embedded NATS running in-process only", "store", cfg.DataDir)
		}
	}
	subjects := events.Subjects{Prefix: cfg.Prefix}
	leaseTTL := max(30*time.Second, 3*cfg.PollInterval)
	store, err := bridge.Provision(ctx, conn.JS, bridge.StoreConfig{
		Subjects: subjects, Replicas: cfg.NATSReplicas, MaxAge: cfg.StreamMaxAge, LeaseTTL: leaseTTL,
	})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	calls := bridge.NewCallMetrics(reg)
	client := bilibili.New(bilibili.Config{
		Credentials: opts.Credentials,
		Endpoints:   cfg.Endpoints(),
		HTTPClient:  opts.HTTPClient,
		Logger:      log,
		Observe:     calls.Observe,
	})
	uid, name, err := identify(ctx, client, log)
	if err != nil {
		return err
	}
	log = log.With("uid", uid)
	if cr := client.Credentials(); cr.DedeUserID == "" {
		cr.DedeUserID = fmt.Sprint(uid)
		client.SetCredentials(cr)
	}

	pub := &bridge.Publisher{JS: conn.JS}
	p := poller.New(poller.Config{
		AccountUID: uid, AccountName: name,
		API: client, Publisher: pub,
		Cursors: store.Cursors, Leases: store.Leases, LeaseTTL: leaseTTL,
		Subjects: subjects, Interval: cfg.PollInterval, StartFrom: cfg.StartFrom, MarkRead: cfg.MarkRead,
		Logger: log, Metrics: poller.NewMetrics(reg),
	})
	a := &App{Conn: conn, Store: store, Client: client, Poller: p, Subjects: subjects, UID: uid, Registry: reg}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- p.Run(ctx)
	}()
	// --- sender and send API (bridge/sender.go, bridge/api.go) ---
	sender := bridge.NewSender(bridge.SenderConfig{
		AccountUID: uid, API: client, Outbox: store.Outbox, State: store.State,
		Publisher: pub, Subjects: subjects, Logger: log,
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sender.Run(ctx); err != nil {
			select {
			case errc <- err:
			default:
				log.Error("sender stopped", "err", err)
			}
			cancel()
		}
	}()
	var sendAPI http.Handler // POST /api/v1/messages; not mounted while API_TOKEN is empty (404)
	if cfg.APIToken != "" {
		sendAPI = bridge.NewAPI(bridge.APIConfig{Token: cfg.APIToken, Logger: log,
			Outbox: &bridge.Outbox{NC: conn.NC, JS: conn.JS, State: store.State, Subjects: subjects, AccountUID: uid}})
	}
	// --- end sender and send API ---
	if cfg.HTTPAddr != "" {
		srv := bridge.NewHTTPServer(cfg.HTTPAddr, reg, a.Ready, log)
		if sendAPI != nil {
			srv.Handle(bridge.MessagesPattern, sendAPI) // send API
		}
		if err := srv.Listen(); err != nil {
			cancel()
			wg.Wait()
			return err
		}
		a.HTTPAddr = srv.Addr()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Run(ctx); err != nil {
				errc <- fmt.Errorf("HTTP server on %s: %w", a.HTTPAddr, err)
				cancel()
			}
		}()
	}
	log.Info("bridge running", "account", name, "poll_interval", cfg.PollInterval, "subjects", subjects.Prefix+"."+fmt.Sprint(uid)+".>")
	if opts.Started != nil {
		opts.Started(a)
	}
	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// identify finds the account's uid and name from nav. With an expired
// login the uid from the cookie still lets the bridge start (paused, and
// saying so); without any uid it cannot know its subjects.
func identify(ctx context.Context, c *bilibili.Client, log *slog.Logger) (int64, string, error) {
	wait := time.Second
	for {
		nav, err := c.Nav(ctx)
		switch {
		case err == nil && nav.IsLogin:
			return nav.Mid, nav.Uname, nil
		case bilibili.IsLoginExpired(err) || (err == nil && !nav.IsLogin):
			if uid := c.Credentials().UID(); uid != 0 {
				return uid, "", nil
			}
			return 0, "", errors.New("the Bilibili login has expired: run `bilibridge login` to log in again")
		}
		if uid := c.Credentials().UID(); uid != 0 {
			log.Warn("Bilibili unreachable at start; continuing with the uid from the cookie", "err", err)
			return uid, "", nil
		}
		log.Warn("Bilibili unreachable at start; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}
