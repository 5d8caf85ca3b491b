// Package bus is bilibridge's connection to NATS JetStream: the embedded
// server (or an external one), the streams and KV buckets every part
// shares (Provision), and publishing with de-duplication (Publisher).
package bus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/dirlock"
)

// NATSConfig says where NATS is.
type NATSConfig struct {
	// URL of external NATS servers, comma-separated; empty starts an
	// embedded server.
	URL string
	// Creds is a credentials file for an external NATS.
	Creds string
	// User and Password are, for an external NATS, the login to connect
	// with (instead of Creds); for the embedded server, the login its
	// listener requires. The bridge's own in-process connection never
	// needs them.
	User, Password string
	// Listen is where the embedded server listens ("host:port"); "off"
	// keeps it in-process only. Without User and Password it must be a
	// loopback address.
	Listen string
	// DataDir holds the embedded JetStream store (under DataDir/nats).
	DataDir string
	// Name identifies this connection in the server's monitoring.
	Name   string
	Logger *slog.Logger
}

// Conn is a NATS connection with JetStream, and the embedded server
// behind it when there is one.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	server *server.Server
	log    *slog.Logger
}

// Connect connects to NATS, starting the embedded server first when no
// URL is configured.
func Connect(ctx context.Context, cfg NATSConfig) (*Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{log: log}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			log.Warn("NATS async error", "err", err)
		}),
	}
	url := cfg.URL
	switch {
	case url == "":
		e, err := startEmbedded(EmbeddedConfig{Listen: cfg.Listen, User: cfg.User, Password: cfg.Password,
			StoreDir: filepath.Join(cfg.DataDir, "nats"), Logger: log})
		if err != nil {
			return nil, err
		}
		c.server = e.Server
		opts = append(opts, nats.InProcessServer(e.Server), nats.UserInfo(e.user, e.password))
	default:
		opts = append(opts, Login(cfg.User, cfg.Password, cfg.Creds)...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		c.shutdownServer()
		if cfg.URL == "" {
			return nil, fmt.Errorf("connecting to the embedded NATS: %w", err)
		}
		return nil, ConnectError(url, err)
	}
	c.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	c.JS = js
	return c, nil
}

// Embedded reports whether the server runs inside this process.
func (c *Conn) Embedded() bool { return c.server != nil }

// ClientURL is where other processes reach the embedded server, or "".
func (c *Conn) ClientURL() string {
	if c.server == nil || c.server.Addr() == nil {
		return ""
	}
	return "nats://" + c.server.Addr().String()
}

// Connected reports whether the connection is up.
func (c *Conn) Connected() bool { return c.NC != nil && c.NC.IsConnected() }

// Close drains the connection, so that in-flight publishes finish, and
// stops the embedded server, which flushes its store.
func (c *Conn) Close() {
	if c.NC != nil {
		done := make(chan struct{})
		c.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := c.NC.Drain(); err != nil {
			c.NC.Close()
		} else {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				c.NC.Close()
			}
		}
	}
	c.shutdownServer()
}

func (c *Conn) shutdownServer() {
	if c.server != nil {
		c.server.Shutdown()
		c.server.WaitForShutdown()
	}
}

// EmbeddedConfig configures the embedded NATS server.
type EmbeddedConfig struct {
	Listen string // "host:port", "off", or "" for in-process only
	// User and Password, when set, are required of every client of the
	// listener. Without them only a loopback Listen is allowed, and its
	// clients need no login.
	User, Password string
	StoreDir       string
	// MaxStore and MaxMemory bound JetStream; zero means 10 GiB / 256 MiB,
	// since the server's defaults (free disk, 75% of RAM) do not suit a
	// sidecar.
	MaxStore, MaxMemory int64
	Logger              *slog.Logger
}

// Users of the embedded server that this process defines for itself.
const (
	// internalUser is the bridge's own in-process connection. Its password
	// is made anew at each start and never leaves the process, and the
	// server accepts it on in-process connections only: so the bridge
	// needs no configured login, and a leaked password opens nothing.
	internalUser = "bilibridge-internal"
	// localUser is whom a client of a loopback listener without
	// credentials becomes (the server's no_auth_user); it exists only
	// when no login is configured.
	localUser = "bilibridge-local"
)

// embedded is a started server and the login of the in-process connection.
type embedded struct {
	*server.Server
	user, password string
}

// StartEmbedded starts a JetStream-enabled NATS server in this process.
// It refuses a listener other hosts can reach unless cfg has a login.
// The server has no in-process client without a login: reach it over its
// listener, or use Connect.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	e, err := startEmbedded(cfg)
	if err != nil {
		return nil, err
	}
	return e.Server, nil
}

func startEmbedded(cfg EmbeddedConfig) (*embedded, error) {
	// Checked here as well as in the configuration: tests, the demo and
	// the benchmark start servers without it.
	if err := config.CheckNATSListen(cfg.Listen, cfg.User, cfg.Password); err != nil {
		return nil, err
	}
	if cfg.User == internalUser || cfg.User == localUser {
		return nil, fmt.Errorf("NATS_USER %s is reserved for the bridge itself: choose another", cfg.User)
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("DATA_DIR: cannot create the NATS store %s (%v): point DATA_DIR at a writable directory", cfg.StoreDir, unwrapPath(err))
	}
	// NATS does not lock its store: two servers on one store lose writes
	// both confirmed.
	unlock, err := dirlock.Lock(cfg.StoreDir, "bilibridge.lock", 2*time.Second)
	switch {
	case errors.Is(err, dirlock.ErrUnsupported):
		unlock = func() {} // one bridge per DATA_DIR is then the operator's care
	case errors.Is(err, dirlock.ErrLocked):
		return nil, fmt.Errorf("DATA_DIR: the NATS store %s is in use by another bilibridge process: stop it, or give this one its own DATA_DIR (NATS_URL lets several bridges share one NATS)", cfg.StoreDir)
	case err != nil:
		return nil, fmt.Errorf("DATA_DIR: cannot write in the NATS store %s (%v): point DATA_DIR at a writable directory", cfg.StoreDir, unwrapPath(err))
	}
	started := false
	defer func() {
		if !started {
			unlock()
		}
	}()
	e := &embedded{user: internalUser, password: rand.Text()}
	opts := &server.Options{
		ServerName:         "bilibridge",
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		JetStreamMaxStore:  cfg.MaxStore,
		JetStreamMaxMemory: cfg.MaxMemory,
		// The server's own signal handlers would os.Exit under us.
		NoSigs: true,
	}
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = 10 << 30
	}
	if opts.JetStreamMaxMemory == 0 {
		opts.JetStreamMaxMemory = 256 << 20
	}
	switch cfg.Listen {
	case "", "off":
		opts.DontListen = true
	default:
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("NATS_LISTEN %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("NATS_LISTEN %q: bad port", cfg.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT // 0 would mean 4222
		} else if ln, err := net.Listen("tcp", cfg.Listen); err != nil {
			// Said now: the server would only never become ready.
			return nil, fmt.Errorf("NATS_LISTEN %s is taken (another bilibridge, or a NATS server?): stop that, or set NATS_LISTEN to a free address, or to off", cfg.Listen)
		} else {
			ln.Close()
		}
		opts.Host, opts.Port = host, p
	}
	// Every client logs in, the in-process one too: users rather than
	// no authentication at all, so that the listener's rule and the
	// bridge's own access are independent of each other.
	opts.Users = []*server.User{{
		Username: e.user, Password: e.password,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}}
	switch {
	case cfg.User != "":
		opts.Users = append(opts.Users, &server.User{Username: cfg.User, Password: cfg.Password})
	case !opts.DontListen:
		// A loopback listener without a login keeps working as before:
		// its clients become localUser, whose password nobody knows.
		opts.Users = append(opts.Users, &server.User{Username: localUser, Password: rand.Text(),
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeStandard: {}}})
		opts.NoAuthUser = localUser
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLogger(natsLogger{cfg.Logger}, false, false)
	}
	go ns.Start()
	// A JetStream start failure (bad store dir) shows only as never
	// becoming ready.
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not become ready (is the data directory writable, and the listen address free?)")
	}
	e.Server = ns
	started = true
	go func() {
		ns.WaitForShutdown()
		unlock()
	}()
	return e, nil
}

// unwrapPath drops the operation and path of a *PathError: the message
// names the path already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// natsLogger forwards the server's log to slog, at one level lower than
// the server uses: its notices are routine for us.
type natsLogger struct{ l *slog.Logger }

// plaintextPasswordsWarning is what the server says at every start when
// its users have passwords rather than bcrypt hashes. The advice is for
// configuration files; the embedded server's passwords exist only in this
// process's memory (made at start, or from the environment, which holds
// them in plain text anyway), so the warning would be noise.
const plaintextPasswordsWarning = "Plaintext passwords detected, use nkeys or bcrypt"

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  {}
func (n natsLogger) Tracef(format string, v ...any)  {}

func (n natsLogger) Warnf(format string, v ...any) {
	if format == plaintextPasswordsWarning {
		n.l.Debug("nats: " + format)
		return
	}
	n.l.Warn("nats: " + fmt.Sprintf(format, v...))
}

// Login is the connection option of a NATS login: a user and password,
// or else a credentials file; none when neither is set.
func Login(user, password, creds string) []nats.Option {
	switch {
	case user != "":
		return []nats.Option{nats.UserInfo(user, password)}
	case creds != "":
		return []nats.Option{nats.UserCredentials(creds)}
	}
	return nil
}

// ConnectError says why a connection to servers (a comma-separated list
// of URLs) failed, naming them without passwords and, where it helps, the
// setting to look at.
func ConnectError(servers string, err error) error {
	list := strings.Split(servers, ",")
	for i, s := range list {
		if u, perr := neturl.Parse(strings.TrimSpace(s)); perr == nil {
			list[i] = u.Redacted()
		} else {
			list[i] = "(unparsable URL)"
		}
	}
	at := strings.Join(list, ",")
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return &explained{fmt.Sprintf("NATS at %s refused the login: set NATS_USER and NATS_PASSWORD (or NATS_CREDS) to the login it expects", at), err}
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("nothing answers as NATS at %s: %w", at, err)
	}
	return fmt.Errorf("connecting to NATS at %s: %w", at, err)
}

// explained is an error told in our words that still is its cause for
// errors.Is.
type explained struct {
	msg   string
	cause error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.cause }
