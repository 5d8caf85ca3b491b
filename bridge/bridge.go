// Package bridge is bilibridge assembled: from the configuration it
// connects NATS (package bus), starts a poller, a credentials keeper and a
// sender per Bilibili account, the delivery runtime for every sink, and
// the HTTP server. cmd/bilibridge, the demo and the end-to-end tests all
// run it.
package bridge

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/lease"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team"
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
	Started func(*Bridge)
	// SummaryEvery is how often the bridge logs a summary; default
	// SummaryEvery.
	SummaryEvery time.Duration
}

// Bridge is a running bridge.
type Bridge struct {
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
	// Members, Projection and Team are the team inbox: who is on the
	// team, this process's view of every conversation, and the actions
	// on them.
	Members    *team.Members
	Projection *team.Projection
	Team       *team.Service
	Sessions   *team.Sessions
	Presence   *team.Presence

	pub  *bus.Publisher
	http *HTTPServer
	// holder names this process in the leases (lease.Holder).
	holder string
	log    *slog.Logger
	rt     *sinks.Runtime

	mu       sync.Mutex
	lastSend *SendOutcome
}

// Account is one Bilibili account the bridge serves: its own client (and
// so its own request budget), poller, lease and sender.
type Account struct {
	UID    int64
	Name   string
	Client *bilibili.Client
	Poller *poller.Poller
	// FromEnv is true for the login of BILI_SESSDATA/BILI_JCT, which
	// `bilibridge login` cannot replace.
	FromEnv bool
}

// Run runs the bridge until ctx ends, then shuts down in order: the
// pollers stop, in-flight publishes finish, the NATS connection drains and
// the embedded server flushes and stops. The configuration was checked
// by config.Load; Run checks it again, so that nothing starts on a
// configuration built by hand that would fail later.
func Run(ctx context.Context, opts Options) error {
	cfg, log := opts.Config, opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(opts.Accounts) == 0 {
		return errors.New("no Bilibili account to serve")
	}
	b, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Conn.Close()
	// Under the name its predecessor used, a process restarted after a
	// crash takes back the leases it left at once.
	_ = os.MkdirAll(cfg.DataDir, 0o700) // with an external NATS it may not exist yet; Holder says if unusable
	holder, releaseHolder, err := lease.Holder(cfg.DataDir)
	if err != nil {
		log.Warn("after a crash, a restart of this bridge will wait out its leases (LEASE_TTL)", "err", err)
		holder, releaseHolder = uuid.NewString(), func() {}
	}
	defer releaseHolder()
	b.holder = holder

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &tasks{ctx: ctx, cancel: cancel}
	// fail stops what already runs; the HTTP listener, bound early, is
	// released.
	fail := func(err error) error {
		stopping := ctx.Err() != nil
		cancel()
		t.Wait()
		if b.http != nil {
			b.http.Close()
		}
		if stopping && errors.Is(err, context.Canceled) {
			return nil // asked to stop while starting: no error
		}
		return err
	}

	// The runtime is made before the pollers run: a sink seen for the
	// first time starts with the events published from now on.
	rt := b.runtime(cfg)
	b.rt = rt
	// The HTTP server binds first: a busy port fails the start, and the
	// sender must know the address that serves Telegram photos.
	if cfg.HTTPAddr != "" {
		b.http = NewHTTPServer(cfg.HTTPAddr, b.Registry, b.Ready, log)
		if err := b.http.Listen(); err != nil {
			return fail(err)
		}
		b.HTTPAddr = b.http.Addr()
	}
	images := &send.ImageFetcher{Uploads: b.Store.Uploads}
	if b.HTTPAddr != "" {
		images.AllowAddrs = []string{localAddr(b.HTTPAddr)}
	}
	calls, polls := NewCallMetrics(b.Registry), poller.NewMetrics(b.Registry)
	for _, login := range opts.Accounts {
		if err := b.startAccount(ctx, t, cfg, opts, login, images, calls, polls); err != nil {
			return fail(err)
		}
	}
	b.Outbox = &send.Outbox{NC: b.Conn.NC, JS: b.Conn.JS, Records: b.Store.Records, Subjects: b.Subjects}
	for _, acct := range b.Accounts {
		b.Outbox.Accounts = append(b.Outbox.Accounts, acct.UID)
	}
	b.startTeam(ctx, t, cfg)

	// Sinks start once every account is known (their names and status
	// read b.Accounts); rt.Since was fixed before the pollers ran, so
	// nothing published meanwhile is missed.
	integrations, err := b.buildIntegrations(cfg, log)
	if err != nil {
		return fail(err)
	}
	for _, in := range integrations {
		t.Go("sink "+in.sink.Name(), func() error { return rt.Run(ctx, in.sink) })
		if in.listen != nil {
			t.Go("replies from "+in.sink.Name(), func() error { return in.listen(ctx) })
		}
	}
	if b.http != nil {
		// Every API route needs credentials: API_TOKEN, a member's token,
		// or a browser session of the inbox served at /.
		in := b.inbox()
		b.http.Handle(api.Prefix, b.api(cfg, in))
		b.http.Handle("/", in)
		t.Go("HTTP server", func() error { return b.http.Run(ctx) })
	}
	every := opts.SummaryEvery
	if every <= 0 {
		every = SummaryEvery
	}
	t.Go("summary", func() error { return b.summarize(ctx, every, log) })
	log.Info("bridge running", "accounts", len(b.Accounts), "poll_interval", cfg.PollInterval, "sinks", len(integrations))
	if opts.Started != nil {
		opts.Started(b)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return t.Wait()
}

// connect connects to NATS (starting the embedded server when NATS_URL
// is empty) and provisions the streams and buckets.
func connect(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Bridge, error) {
	conn, err := bus.Connect(ctx, bus.NATSConfig{
		URL: cfg.NATSURL, Creds: cfg.NATSCreds, User: cfg.NATSUser, Password: cfg.NATSPassword,
		Listen: cfg.NATSListen, DataDir: cfg.DataDir, Name: "bilibridge", Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if conn.Embedded() {
		if u := conn.ClientURL(); u != "" {
			log.Info("embedded NATS running", "url", u, "store", cfg.DataDir)
		} else {
			log.Info("embedded NATS running in-process only", "store", cfg.DataDir)
		}
	}
	subjects := events.Subjects{Prefix: cfg.Prefix}
	store, err := bus.Provision(ctx, conn.JS, bus.StoreConfig{
		Subjects: subjects, Replicas: cfg.NATSReplicas, MaxAge: cfg.StreamMaxAge, LeaseTTL: cfg.LeaseTTL,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Bridge{Conn: conn, Store: store, Subjects: subjects, Registry: reg, pub: &bus.Publisher{JS: conn.JS}, log: log}, nil
}

// runtime makes the delivery runtime of every sink.
func (b *Bridge) runtime(cfg *config.Config) *sinks.Runtime {
	return sinks.NewRuntime(sinks.RuntimeConfig{
		Stream: b.Store.Events, Publisher: b.pub, Subjects: b.Subjects,
		Records: b.Store.Records, GiveUp: cfg.DeliveryGiveUp,
		Leases: b.Store.Leases, LeaseTTL: cfg.LeaseTTL, Holder: b.holder,
		Metrics: sinks.NewMetrics(b.Registry), Logger: b.log,
		Disabled: func(ctx context.Context, sink string, err error) {
			for _, acct := range b.Accounts {
				b.publishStatus(ctx, acct.UID, events.StateSinkDisabled,
					fmt.Sprintf("Sink %s is disabled until the bridge restarts: %v", sink, err))
			}
		},
	})
}

// publishStatus publishes an account.status event; failing that, it logs.
func (b *Bridge) publishStatus(ctx context.Context, uid int64, state, msg string) {
	ev, err := events.NewAccountStatus(uid, state, msg, time.Now())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = b.pub.Publish(ctx, b.Subjects.Account(uid), ev)
	}
	if err != nil {
		b.log.Warn("publishing account status", "state", state, "err", err)
	}
}

// localAddr is addr as a client on this host dials it: an unspecified
// listen address (0.0.0.0, ::) becomes loopback.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
