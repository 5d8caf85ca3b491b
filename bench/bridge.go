package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/config"
)

// settings are the bridge's configuration, the same for both ways of
// running it.
type settings struct {
	dataDir      string
	fakeURL      string
	webhookURL   string
	secret       string
	uid          int64
	sessdata     string
	jct          string
	pollInterval time.Duration
}

func (s settings) env() []string {
	env := []string{
		"DATA_DIR=" + s.dataDir,
		"NATS_LISTEN=off",
		"HTTP_ADDR=",
		"BILI_API_URL=" + s.fakeURL, "BILI_MAIN_API_URL=" + s.fakeURL,
		"BILI_PASSPORT_URL=" + s.fakeURL, "BILI_WWW_URL=" + s.fakeURL,
		"BILI_SESSDATA=" + s.sessdata, "BILI_JCT=" + s.jct, "BILI_UID=" + strconv.FormatInt(s.uid, 10),
		"POLL_INTERVAL=" + s.pollInterval.String(),
		"START_FROM=now",
		"WEBHOOK_URLS=" + s.webhookURL,
		"WEBHOOK_SECRET=" + s.secret,
		"LOG_LEVEL=info",
	}
	if s.pollInterval < config.MinPollInterval {
		env = append(env, "POLL_UNSAFE=1")
	}
	return env
}

func (s settings) config() *config.Config {
	c := config.Defaults()
	c.DataDir, c.NATSListen, c.HTTPAddr = s.dataDir, "off", ""
	c.APIURL, c.MainAPIURL, c.PassportURL, c.WWWURL = s.fakeURL, s.fakeURL, s.fakeURL, s.fakeURL
	c.UID = s.uid
	c.PollInterval, c.PollUnsafe, c.StartFrom = s.pollInterval, s.pollInterval < config.MinPollInterval, "now"
	c.WebhookURLs, c.WebhookSecret = config.URLList{s.webhookURL}, s.secret
	return &c
}

// runningBridge is one run of the bridge, until stop.
type runningBridge interface {
	proc() proc
	// exited is closed when the bridge ends by itself (or after stop).
	exited() <-chan struct{}
	// stop ends the bridge gracefully and returns its error, if any.
	stop() error
}

// passEnv are the parent's variables a subprocess keeps; nothing else of
// the parent's environment reaches it, so no NATS_URL or token leaks in.
var passEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "GORACE", "GOCOVERDIR", "GODEBUG", "GOMAXPROCS", "GOGC", "GOMEMLIMIT"}

// subprocess runs argv (e.g. `bilibridge run`) with the settings in its
// environment; its output goes to logFile.
type subprocess struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startSubprocess(argv, extraEnv []string, s settings, log io.Writer) (*subprocess, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, s.env()...)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the bridge (%s): %w", argv[0], err)
	}
	p := &subprocess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *subprocess) proc() proc              { return proc{pid: strconv.Itoa(p.cmd.Process.Pid)} }
func (p *subprocess) exited() <-chan struct{} { return p.done }

func (p *subprocess) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("the bridge exited early: %v", p.err)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("the bridge did not stop within 30s of SIGTERM; killed")
	}
}

// inProcess runs bridge.Run in this process.
type inProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startInProcess(ctx context.Context, s settings, log io.Writer) *inProcess {
	ctx, cancel := context.WithCancel(ctx)
	p := &inProcess{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = bridge.Run(ctx, bridge.Options{
			Config: s.config(),
			Accounts: []config.Login{{Credentials: bilibili.Credentials{
				SESSDATA: s.sessdata, BiliJct: s.jct, DedeUserID: strconv.FormatInt(s.uid, 10)}}},
			Logger: slog.New(slog.NewTextHandler(log, nil)),
		})
	}()
	return p
}

func (p *inProcess) proc() proc              { return proc{pid: "self"} }
func (p *inProcess) exited() <-chan struct{} { return p.done }

func (p *inProcess) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("the bridge exited early: %v", p.err)
	default:
	}
	p.cancel()
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		return errors.New("the bridge did not stop within 30s")
	}
}

// callLog wraps the fake Bilibili and timestamps every request it
// answers, so the report can tell Bilibili's pacing from the pipeline's
// own time.
type callLog struct {
	h     http.Handler
	mu    sync.Mutex
	calls []call
}

type call struct {
	endpoint string
	talker   uint64 // fetch_session_msgs: talker_id; cards: the one uid asked
	done     time.Time
}

func (l *callLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.h.ServeHTTP(w, r)
	c := call{endpoint: path.Base(r.URL.Path), done: time.Now()}
	switch c.endpoint {
	case "fetch_session_msgs":
		c.talker, _ = strconv.ParseUint(r.URL.Query().Get("talker_id"), 10, 64)
	case "cards":
		c.talker, _ = strconv.ParseUint(r.URL.Query().Get("uids"), 10, 64) // 0 when several
	}
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

func (l *callLog) reset() {
	l.mu.Lock()
	l.calls = nil
	l.mu.Unlock()
}

func (l *callLog) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]call(nil), l.calls...)
}
