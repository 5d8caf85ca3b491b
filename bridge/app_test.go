package bridge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
)

const (
	uid    int64 = 425503913
	friend int64 = 293793435
)

// running is one bridge.Run in the background.
type running struct {
	app  *bridge.Bridge
	stop func() error // cancels Run and returns its error; safe to call twice
}

// defaultLogin is the account every fake in these tests knows.
var defaultLogin = config.Login{Credentials: bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct"}}

// start runs the bridge with cfg against fake as defaultLogin.
func start(t *testing.T, cfg *config.Config, fake *bilitest.Server) *running {
	t.Helper()
	return startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})
}

// startApp runs bridge.Run with opts until the test ends (or stop), and
// returns once it reported itself started.
func startApp(t *testing.T, opts bridge.Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *bridge.Bridge, 1)
	opts.Started = func(a *bridge.Bridge) { started <- a }
	var runErr error
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = bridge.Run(ctx, opts)
	}()
	stop := func() error {
		once.Do(func() { cancel(); <-done })
		return runErr
	}
	t.Cleanup(func() { stop() })
	select {
	case a := <-started:
		return &running{app: a, stop: stop}
	case <-done:
		t.Fatalf("app stopped before it started: %v", runErr)
	case <-time.After(30 * time.Second):
		t.Fatalf("app did not start")
	}
	return nil
}

func testConfig(t *testing.T, fake *bilitest.Server, dataDir string) *config.Config {
	t.Helper()
	u := fake.URL()
	cfg := config.Defaults()
	cfg.DataDir, cfg.APIURL, cfg.MainAPIURL, cfg.PassportURL, cfg.WWWURL = dataDir, u, u, u, u
	cfg.PollInterval, cfg.PollUnsafe = 20*time.Millisecond, true
	cfg.NATSListen, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.StreamMaxAge = 24 * time.Hour
	return &cfg
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunPublishesServesHealthAndShutsDownCleanly(t *testing.T) {
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	dir := t.TempDir()
	cfg := testConfig(t, fake, dir)
	r := start(t, cfg, fake)
	if len(r.app.Accounts) != 1 || r.app.Accounts[0].UID != uid {
		t.Fatalf("accounts: %+v", r.app.Accounts)
	}

	// A second process reaches the embedded NATS over TCP, like `nats sub`.
	url := r.app.Conn.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("embedded NATS not listening: %q", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("bili.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	d := fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hi")})
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Parse(m.Data)
	if err != nil || ev.ID != fmt.Sprintf("%d-%d", uid, d.MsgKey) {
		t.Fatalf("event %+v %v", ev, err)
	}

	base := "http://" + r.app.HTTPAddr
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz %d %s", code, body)
	}
	for _, want := range []string{`bilibridge_polls_total{result="ok"}`, `bilibridge_bilibili_calls_total{code="0",endpoint="new_sessions"}`,
		`bilibridge_events_published_total{type="com.bilibili.dm.message"} 1`, "bilibridge_last_good_poll_timestamp_seconds", "bilibridge_poll_lag_seconds"} {
		bustest.Eventually(t, "/metrics to show "+want, func() bool {
			_, metrics := get(t, base+"/metrics")
			return strings.Contains(metrics, want)
		})
	}

	// The login expires: not ready, one status event, no exit.
	fake.SetLoginValid(uid, false)
	bustest.Eventually(t, "/readyz 503", func() bool { code, _ := get(t, base+"/readyz"); return code == 503 })
	if _, body := get(t, base+"/readyz"); !strings.Contains(body, "bilibridge login") {
		t.Errorf("/readyz body does not say what to do: %s", body)
	}
	fake.SetLoginValid(uid, true)
	bustest.Eventually(t, "/readyz 200 again", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })

	if err := r.stop(); err != nil {
		t.Fatalf("Run returned %v after cancel", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("HTTP still serving after shutdown")
	}

	// A restart finds the stream and cursors on disk and republishes nothing.
	r2 := start(t, cfg, fake)
	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("after restart")})
	stream, err := r2.app.Conn.JS.Stream(context.Background(), "BILI")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	bustest.Eventually(t, "the message after restart", func() bool {
		texts = texts[:0]
		for _, m := range bustest.StreamEvents(t, stream) {
			if m.Event.Type == events.TypeMessage {
				var d events.MessageData
				m.Event.DecodeData(&d)
				texts = append(texts, d.Message.Text)
			}
		}
		return len(texts) >= 2
	})
	if fmt.Sprint(texts) != "[hi after restart]" {
		t.Errorf("messages in the stream after a restart: %q", texts)
	}
	var _ jetstream.Stream = stream
}

func TestStartWithExpiredLoginAndNoUID(t *testing.T) {
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, SESSDATA: "sess", BiliJct: "jct"})
	fake.SetLoginValid(uid, false)
	cfg := testConfig(t, fake, t.TempDir())
	cfg.HTTPAddr = ""
	err := bridge.Run(context.Background(), bridge.Options{Config: cfg, Accounts: []config.Login{{Credentials: bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct"}}}, HTTPClient: fake.Client()})
	if err == nil || !strings.Contains(err.Error(), "bilibridge login") {
		t.Fatalf("err %v", err)
	}
}

func TestNewCredentialsFileEndsALoginExpiry(t *testing.T) {
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	dir := t.TempDir()
	file := dir + "/credentials.json"
	old := bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct", DedeUserID: fmt.Sprint(uid)}
	if err := account.WriteCredentials(file, old); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, fake, dir)
	r := startApp(t, bridge.Options{Config: cfg, Accounts: []config.Login{{Credentials: old, File: file}}, HTTPClient: fake.Client()})
	a := r.app
	base := "http://" + a.HTTPAddr
	fake.SetLoginValid(uid, false)
	bustest.Eventually(t, "login_valid 0", func() bool {
		_, m := get(t, base+"/metrics")
		return strings.Contains(m, `bilibridge_login_valid{uid="425503913"} 0`)
	})
	// `bilibridge login` on the host writes a new file.
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "new-sess", BiliJct: "new-jct"})
	if err := account.WriteCredentials(file, bilibili.Credentials{SESSDATA: "new-sess", BiliJct: "new-jct", DedeUserID: fmt.Sprint(uid)}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, "recovery without a restart", func() bool {
		_, m := get(t, base+"/metrics")
		code, _ := get(t, base+"/readyz")
		return code == 200 && strings.Contains(m, `bilibridge_login_valid{uid="425503913"} 1`)
	})
	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("after the new login")})
	stream, _ := a.Conn.JS.Stream(context.Background(), "BILI")
	var states []string
	bustest.Eventually(t, "the message after the new login", func() bool {
		states = states[:0]
		found := false
		for _, m := range bustest.StreamEvents(t, stream) {
			switch m.Event.Type {
			case events.TypeAccountStatus:
				var d events.AccountStatusData
				m.Event.DecodeData(&d)
				states = append(states, d.State)
			case events.TypeMessage:
				found = true
			}
		}
		return found
	})
	if fmt.Sprint(states) != "[login_expired logged_in]" {
		t.Errorf("status events %v", states)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
