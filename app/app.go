// Package app assembles bilibridge from its configuration: NATS, the
// Bilibili client, the poller and the HTTP server. cmd/bilibridge and the
// demo mode both run it; so do the end-to-end tests.
package app

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// Options are what Run needs beyond the configuration.
type Options struct {
	Config *config.Config
	// Accounts are the Bilibili logins to serve, at least one. A login
	// with a File is reloaded when the file changes and refreshed into it.
	Accounts []config.Login
	Logger   *slog.Logger
	// HTTPClient talks to Bilibili; default: a plain client.
	HTTPClient *http.Client
	// RefreshKey encrypts the cookie refresh's correspondPath; nil means
	// Bilibili's key (tests use the fake's).
	RefreshKey *rsa.PublicKey
	// Started, when set, is called once everything runs.
	Started func(*App)
}

// App is a running bridge.
type App struct {
	Conn     *bus.Conn
	Store    *bus.Store
	Subjects events.Subjects
	Accounts []*Account
	Registry *prometheus.Registry
	// HTTPAddr is where /healthz, /readyz, /metrics and the API listen, or
	// "" when HTTP_ADDR is empty.
	HTTPAddr string
	// Outbox queues send commands for every account.
	Outbox *send.Outbox
}

// Account is one Bilibili account the bridge serves: its own client (and
// so its own request budget), poller, lease and sender.
type Account struct {
	UID    int64
	Name   string
	Client *bilibili.Client
	Poller *poller.Poller
}

// Ready reports whether NATS is connected and every Bilibili login valid.
func (a *App) Ready() error {
	if !a.Conn.Connected() {
		return errors.New("NATS is not connected")
	}
	for _, acct := range a.Accounts {
		if !acct.Poller.Status().LoginValid {
			return fmt.Errorf("the Bilibili login of account %d has expired: run `bilibridge login`", acct.UID)
		}
	}
	return nil
}

// Run runs the bridge until ctx ends, then shuts down in order: the
// pollers stop, in-flight publishes finish, the NATS connection drains and
// the embedded server flushes and stops.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(opts.Accounts) == 0 {
		return errors.New("no Bilibili account to serve")
	}
	sinkList, err := webhookSinks(cfg, log)
	if err != nil {
		return err
	}
	conn, err := bus.Connect(ctx, bus.NATSConfig{
		URL: cfg.NATSURL, Creds: cfg.NATSCreds, User: cfg.NATSUser, Password: cfg.NATSPassword,
		Listen: cfg.NATSListen, DataDir: cfg.DataDir, Name: "bilibridge", Logger: log,
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
	leaseTTL := cfg.LeaseTTL
	if leaseTTL <= 0 {
		leaseTTL = 30 * time.Second
	}
	store, err := bus.Provision(ctx, conn.JS, bus.StoreConfig{
		Subjects: subjects, Replicas: cfg.NATSReplicas, MaxAge: cfg.StreamMaxAge, LeaseTTL: leaseTTL,
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &App{Conn: conn, Store: store, Subjects: subjects, Registry: reg}
	pub := &bus.Publisher{JS: conn.JS}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &tasks{cancel: cancel}
	var srv *bridge.HTTPServer
	// fail stops what already runs; the HTTP listener, bound early, is
	// released.
	fail := func(err error) error {
		cancel()
		t.Wait()
		if srv != nil {
			srv.Close()
		}
		return err
	}

	// The runtime is made before the pollers run: a sink seen for the
	// first time starts with the events published from now on.
	rt := sinks.NewRuntime(sinks.RuntimeConfig{
		Stream: store.Events, Publisher: pub, Subjects: subjects,
		Records: store.Records, GiveUp: cfg.DeliveryGiveUp,
		Leases: store.Leases, LeaseTTL: leaseTTL,
		Metrics: sinks.NewMetrics(reg), Logger: log,
		Disabled: func(ctx context.Context, sink string, err error) {
			for _, acct := range a.Accounts {
				publishStatus(ctx, pub, subjects, acct.UID, events.StateSinkDisabled,
					fmt.Sprintf("Sink %s is disabled until the bridge restarts: %v", sink, err), log)
			}
		},
	})
	// The HTTP server binds first: a busy port fails the start, and the
	// sender must know the address that serves Telegram photos.
	var images send.ImageFetcher
	if cfg.HTTPAddr != "" {
		srv = bridge.NewHTTPServer(cfg.HTTPAddr, reg, a.Ready, log)
		if err := srv.Listen(); err != nil {
			return fail(err)
		}
		a.HTTPAddr = srv.Addr()
		images.AllowAddrs = []string{localAddr(a.HTTPAddr)}
	}

	calls := bridge.NewCallMetrics(reg)
	pollMetrics := poller.NewMetrics(reg)
	for _, login := range opts.Accounts {
		client := bilibili.New(bilibili.Config{
			Credentials: login.Credentials, Endpoints: cfg.Endpoints(), HTTPClient: opts.HTTPClient,
			Logger: log, Observe: calls.Observe,
		})
		uid, name, err := identify(ctx, client, log)
		if err != nil {
			return fail(err)
		}
		for _, other := range a.Accounts {
			if other.UID == uid {
				return fail(fmt.Errorf("account %d is logged in twice (%s); remove one of its credentials", uid, login.File))
			}
		}
		alog := log.With("uid", uid)
		if cr := client.Credentials(); cr.DedeUserID == "" {
			cr.DedeUserID = fmt.Sprint(uid)
			client.SetCredentials(cr)
		}
		p := poller.New(poller.Config{
			AccountUID: uid, AccountName: name,
			API: client, Publisher: pub,
			Cursors: store.Cursors, Leases: store.Leases, LeaseTTL: leaseTTL,
			Subjects: subjects, Interval: cfg.PollInterval, StartFrom: cfg.StartFrom, MarkRead: cfg.MarkRead,
			Logger: alog, Metrics: pollMetrics,
		})
		acct := &Account{UID: uid, Name: name, Client: client, Poller: p}
		a.Accounts = append(a.Accounts, acct)
		t.Go(fmt.Sprintf("poller %d", uid), func() error { return p.Run(ctx) })
		if login.File == "" && login.Credentials.RefreshToken != "" {
			alog.Warn("BILI_REFRESH_TOKEN is ignored with BILI_SESSDATA/BILI_JCT: a refresh would end the session the environment holds; use `bilibridge login`, whose credentials file is refreshed automatically")
		}
		if login.File != "" {
			keeper := &account.Keeper{
				API: client, File: login.File, Refresh: true, Changed: p.Wake, Log: alog, Leader: p.Leader,
				Refresher: &account.Refresher{API: client, File: login.File, Key: opts.RefreshKey, Log: alog},
			}
			t.Go(fmt.Sprintf("credentials keeper %d", uid), func() error { return keeper.Run(ctx) })
		}
		sender := send.NewSender(send.SenderConfig{
			AccountUID: uid, API: client, Outbox: store.Outbox, Records: store.Records, State: store.State,
			Publisher: pub, Subjects: subjects, Logger: alog, Images: &images,
		})
		t.Go(fmt.Sprintf("sender %d", uid), func() error { return sender.Run(ctx) })
		alog.Info("account running", "account", name, "subjects", fmt.Sprintf("%s.%d.>", subjects.Prefix, uid))
	}

	// Sinks start once every account is known (their status callbacks
	// read a.Accounts); rt.Since was fixed before the pollers ran, so
	// nothing published meanwhile is missed.
	for _, s := range sinkList {
		t.Go("sink "+s.Name(), func() error { return rt.Run(ctx, s) })
	}
	outbox := &send.Outbox{NC: conn.NC, JS: conn.JS, Records: store.Records, Subjects: subjects}
	for _, acct := range a.Accounts {
		outbox.Accounts = append(outbox.Accounts, acct.UID)
	}
	a.Outbox = outbox
	if cfg.TelegramToken != "" && cfg.TelegramChatID != "" {
		tg, err := telegramSink(cfg, a, store, outbox, srv, log)
		if err != nil {
			return fail(err)
		}
		t.Go("sink "+tg.Name(), func() error { return rt.Run(ctx, tg) })
		t.Go("telegram replies", func() error { return tg.Run(ctx) })
	}
	if cfg.DiscordToken != "" || cfg.DiscordChannelID != "" {
		dc, err := discordSink(cfg, a, store, log)
		if err != nil {
			return fail(err)
		}
		t.Go("sink "+dc.Name(), func() error { return rt.Run(ctx, dc) })
		t.Go("discord gateway", func() error { return dc.Run(ctx) })
	}
	if srv != nil {
		// POST /api/v1/messages stays unmounted (404) while API_TOKEN is empty.
		if cfg.APIToken != "" {
			srv.Handle(send.MessagesPattern, send.NewHandler(send.HandlerConfig{Token: cfg.APIToken, Logger: log, Outbox: outbox}))
		}
		t.Go("HTTP server", func() error { return srv.Run(ctx) })
	}
	log.Info("bridge running", "accounts", len(a.Accounts), "poll_interval", cfg.PollInterval, "sinks", len(sinkList))
	if opts.Started != nil {
		opts.Started(a)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return t.Wait()
}

// tasks runs the bridge's long-lived parts; the first one that fails
// stops the others.
type tasks struct {
	wg     sync.WaitGroup
	cancel context.CancelFunc
	mu     sync.Mutex
	errs   []error
}

// Go runs fn in its own goroutine.
func (t *tasks) Go(name string, fn func() error) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				t.fail(fmt.Errorf("%s panicked: %v", name, p))
			}
		}()
		if err := fn(); err != nil {
			t.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// fail records err and stops the other tasks.
func (t *tasks) fail(err error) {
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
	t.cancel()
}

// Wait waits for every task and returns their errors.
func (t *tasks) Wait() error {
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}

// webhookSinks builds one sink per WEBHOOK_URLS endpoint.
func webhookSinks(cfg *config.Config, log *slog.Logger) ([]sinks.Sink, error) {
	if strings.TrimSpace(cfg.WebhookURLs) == "" {
		return nil, nil
	}
	urls, err := webhook.ParseURLs(cfg.WebhookURLs)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_URLS: %w", err)
	}
	secrets, err := webhook.ParseSecrets(cfg.WebhookSecret)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_SECRET: %w", err)
	}
	var types []string
	for _, t := range strings.Split(cfg.WebhookEvents, ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	var out []sinks.Sink
	for _, u := range urls {
		s, err := webhook.New(webhook.Config{URL: u, Secrets: secrets, Events: types, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("WEBHOOK_URLS: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// publishStatus publishes an account.status event; failing that, it logs.
func publishStatus(ctx context.Context, pub *bus.Publisher, subjects events.Subjects, uid int64, state, msg string, log *slog.Logger) {
	ev, err := events.NewAccountStatus(uid, state, msg, time.Now())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = pub.Publish(ctx, subjects.Account(uid), ev)
	}
	if err != nil {
		log.Warn("publishing account status", "state", state, "err", err)
	}
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
