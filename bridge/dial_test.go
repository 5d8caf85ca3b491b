package bridge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
)

const natsPassword = "s3cr3t-nats-password"

// dialFails checks that Dial with cfg is refused by the server and that
// the error does not show the password.
func dialFails(t *testing.T, cfg *config.Config, what string) {
	t.Helper()
	nc, err := bridge.Dial(cfg, "test")
	if err == nil {
		nc.Close()
		t.Fatalf("%s: Dial connected", what)
	}
	if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "set NATS_USER and NATS_PASSWORD") {
		t.Errorf("%s: %v, want an authorization violation that names NATS_USER and NATS_PASSWORD", what, err)
	}
	if strings.Contains(err.Error(), natsPassword) {
		t.Errorf("%s: the error shows the password: %v", what, err)
	}
}

// TestDialLogsInToTheEmbeddedNATS runs the bridge with a NATS login, as
// `bilibridge run` would, and dials its embedded NATS like `bilibridge
// tail` and `send` do.
func TestDialLogsInToTheEmbeddedNATS(t *testing.T) {
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	cfg := testConfig(t, fake, t.TempDir())
	cfg.NATSUser, cfg.NATSPassword = "ops", natsPassword
	r := start(t, cfg, fake)

	// What tail and send see: the same environment, the listener's address.
	client := *cfg
	client.NATSListen = strings.TrimPrefix(r.app.Conn.ClientURL(), "nats://")
	nc, err := bridge.Dial(&client, "bilibridge tail")
	if err != nil {
		t.Fatalf("Dial with the login: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("bili.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hi")})
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no event through the logged-in connection: %v", err)
	}

	anon := client
	anon.NATSUser, anon.NATSPassword = "", ""
	dialFails(t, &anon, "without a login")
	wrong := client
	wrong.NATSPassword = "wrong"
	dialFails(t, &wrong, "with a wrong password")
}

// TestDialLogsInToAnExternalNATS: NATS_URL with NATS_USER/NATS_PASSWORD.
func TestDialLogsInToAnExternalNATS(t *testing.T) {
	s := bustest.StartServerWithLogin(t, "ops", natsPassword)
	cfg := &config.Config{NATSURL: s.URL, NATSUser: "ops", NATSPassword: natsPassword}
	nc, err := bridge.Dial(cfg, "bilibridge send")
	if err != nil {
		t.Fatalf("Dial with the login: %v", err)
	}
	nc.Close()
	dialFails(t, &config.Config{NATSURL: s.URL}, "without a login")
	// A login inside NATS_URL stays out of the error.
	withLogin := strings.Replace(s.URL, "nats://", "nats://ops:"+natsPassword+"x@", 1)
	dialFails(t, &config.Config{NATSURL: withLogin}, "with a wrong login in NATS_URL")
}
