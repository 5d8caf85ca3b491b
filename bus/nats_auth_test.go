package bus

// Tests of who may use NATS: the embedded server's listener, the bridge's
// own in-process connection, and the read-only user of
// docs/nats-readonly.conf. Everything runs against real servers over TCP.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/testlog"
)

// loopbackURL is where a client on this machine reaches a server
// listening on addr, which may be an unspecified address (0.0.0.0).
func loopbackURL(t *testing.T, addr net.Addr) string {
	t.Helper()
	if addr == nil {
		t.Fatal("the server has no listener")
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	return "nats://127.0.0.1:" + port
}

func connectOrFail(t *testing.T, ctx context.Context, cfg NATSConfig) *Conn {
	t.Helper()
	c, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestEmbeddedRefusesReachableListenerWithoutLogin(t *testing.T) {
	// Host names and LAN addresses: see config's TestValidate.
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		t.Run(listen, func(t *testing.T) {
			want := fmt.Sprintf("NATS_LISTEN=%s is reachable from other hosts: set NATS_USER and NATS_PASSWORD (or keep NATS_LISTEN on 127.0.0.1)", listen)
			ns, err := StartEmbedded(EmbeddedConfig{Listen: listen, StoreDir: t.TempDir()})
			if err == nil {
				addr := ns.Addr()
				ns.Shutdown()
				t.Fatalf("StartEmbedded started a server on %s that anyone may use", addr)
			}
			if err.Error() != want {
				t.Errorf("StartEmbedded: %q\nwant %q", err, want)
			}
			c, err := Connect(context.Background(), NATSConfig{Listen: listen, DataDir: t.TempDir()})
			if err == nil {
				c.Close()
				t.Fatal("Connect started an embedded server that anyone may use")
			}
			if err.Error() != want {
				t.Errorf("Connect: %q\nwant %q", err, want)
			}
		})
	}
	if _, err := StartEmbedded(EmbeddedConfig{Listen: "0.0.0.0:0", User: "ops", StoreDir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "NATS_PASSWORD") {
		t.Errorf("a user without a password: %v", err)
	}
}

func TestEmbeddedListenerRequiresTheLogin(t *testing.T) {
	const user, password = "ops", "k9Vq3-listener-password"
	for _, listen := range []string{"0.0.0.0:0", "127.0.0.1:0"} {
		t.Run(listen, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var logs testlog.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			conn := connectOrFail(t, ctx, NATSConfig{Listen: listen, User: user, Password: password,
				DataDir: t.TempDir(), Name: "bridge", Logger: log})
			url := loopbackURL(t, conn.server.Addr())

			for name, opts := range map[string][]nats.Option{
				"no login":       nil,
				"wrong password": {nats.UserInfo(user, "wrong")},
				"internal user":  {nats.UserInfo(internalUser, password)},
			} {
				if nc, err := nats.Connect(url, opts...); err == nil {
					nc.Close()
					t.Errorf("%s: connected", name)
				} else if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("%s: %v, want an authorization violation", name, err)
				}
			}

			client, err := nats.Connect(url, nats.UserInfo(user, password))
			if err != nil {
				t.Fatalf("with the login: %v", err)
			}
			defer client.Close()
			sub, err := client.SubscribeSync("bili.1.msg.1.2")
			if err != nil {
				t.Fatal(err)
			}
			if err := client.Flush(); err != nil {
				t.Fatal(err)
			}

			// The bridge's own connection: in-process, JetStream, KV.
			if !conn.Connected() {
				t.Fatal("the in-process connection is down")
			}
			st, err := Provision(ctx, conn.JS, StoreConfig{Subjects: events.Subjects{}})
			if err != nil {
				t.Fatalf("provisioning over the in-process connection: %v", err)
			}
			if _, err := conn.JS.Publish(ctx, "bili.1.msg.1.2", []byte(`{"n":1}`)); err != nil {
				t.Fatalf("JetStream publish: %v", err)
			}
			if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != `{"n":1}` {
				t.Fatalf("the logged-in client did not get the event: %v", err)
			}
			if _, err := st.State.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatalf("KV put: %v", err)
			}
			js, err := jetstream.New(client)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(ctx, BucketState)
			if err != nil {
				t.Fatal(err)
			}
			if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
				t.Fatalf("the logged-in client reads the KV put: %v", err)
			}

			out := logs.String()
			if strings.Contains(out, password) {
				t.Errorf("the password is in the log:\n%s", out)
			}
			if strings.Contains(out, "level=WARN") {
				t.Errorf("warnings at start:\n%s", out)
			}
		})
	}
}

func TestEmbeddedLoopbackNeedsNoLogin(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "localhost:0"} {
		t.Run(listen, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn := connectOrFail(t, ctx, NATSConfig{Listen: listen, DataDir: t.TempDir(), Name: "bridge"})
			if _, err := Provision(ctx, conn.JS, StoreConfig{Subjects: events.Subjects{}}); err != nil {
				t.Fatal(err)
			}
			client, err := nats.Connect("nats://" + conn.server.Addr().String())
			if err != nil {
				t.Fatalf("a local client without a login: %v", err)
			}
			defer client.Close()
			js, err := jetstream.New(client)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "bili.1.msg.1.2", []byte(`{}`)); err != nil {
				t.Fatalf("JetStream publish from a local client: %v", err)
			}
			s, err := conn.JS.Stream(ctx, StreamEvents)
			if err != nil {
				t.Fatal(err)
			}
			if m, err := s.GetLastMsgForSubject(ctx, "bili.1.msg.1.2"); err != nil || string(m.Data) != `{}` {
				t.Fatalf("the bridge does not see the local client's event: %v", err)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn := connectOrFail(t, ctx, NATSConfig{Listen: "off", DataDir: t.TempDir()})
		if conn.ClientURL() != "" {
			t.Errorf("NATS_LISTEN=off listens on %s", conn.ClientURL())
		}
		if _, err := Provision(ctx, conn.JS, StoreConfig{Subjects: events.Subjects{}}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestInternalUserIsInProcessOnly: the bridge's own login is useless over
// the network, even to someone who learnt its password.
func TestInternalUserIsInProcessOnly(t *testing.T) {
	e, err := startEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(); e.WaitForShutdown() })
	if nc, err := nats.Connect(loopbackURL(t, e.Addr()), nats.UserInfo(e.user, e.password)); err == nil {
		nc.Close()
		t.Error("the internal login works over TCP")
	}
	nc, err := nats.Connect("", nats.InProcessServer(e.Server), nats.UserInfo(e.user, e.password))
	if err != nil {
		t.Fatalf("the internal login in-process: %v", err)
	}
	nc.Close()
	if _, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", User: internalUser, Password: "x", StoreDir: t.TempDir()}); err == nil {
		t.Error("NATS_USER may take the internal user's name")
	}
}

// violations collects a client's asynchronous errors.
type violations chan error

func (v violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	select {
	case v <- err:
	default:
	}
}

// expect waits for the server's permissions violation naming subject.
func (v violations) expect(t *testing.T, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-v:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-timeout:
			t.Fatalf("no permissions violation for %s", subject)
		}
	}
}

// TestReadOnlyUserConfig runs nats-server with docs/nats-readonly.conf and
// checks what its reader may and may not do.
func TestReadOnlyUserConfig(t *testing.T) {
	const (
		bridgeUser, bridgePassword = "bilibridge", "5b3f0c-bridge-password"
		readerPassword             = "9e0a41-reader-password"
		webhookToken               = "discord-webhook-token"
	)
	t.Setenv("NATS_USER", bridgeUser)
	t.Setenv("NATS_PASSWORD", bridgePassword)
	t.Setenv("NATS_READER_PASSWORD", readerPassword)
	opts, err := server.ProcessConfigFile("../docs/nats-readonly.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The file as shipped, but on a random loopback port, without the
	// monitoring port, storing in a temp dir.
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, 0, t.TempDir(), true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(15 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	url := loopbackURL(t, ns.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The bridge, as the full user: streams, buckets, a secret in KV, the
	// reader's consumer (created by the operator, as the docs say) and a
	// sink's consumer.
	full := connectOrFail(t, ctx, NATSConfig{URL: url, User: bridgeUser, Password: bridgePassword, Name: "bridge"})
	st, err := Provision(ctx, full.JS, StoreConfig{Subjects: events.Subjects{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.State.Put(ctx, "discord", []byte(webhookToken)); err != nil {
		t.Fatal(err)
	}
	readerCons, err := full.JS.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{Durable: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.JS.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{Durable: "webhook"}); err != nil {
		t.Fatal(err)
	}

	denied := make(violations, 64)
	reader, err := nats.Connect(url, nats.UserInfo("reader", readerPassword), nats.ErrorHandler(denied.handler))
	if err != nil {
		t.Fatalf("reader login: %v", err)
	}
	defer reader.Close()

	t.Run("subscribes to events", func(t *testing.T) {
		sub, err := reader.SubscribeSync("bili.1.msg.1.2")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := reader.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := full.JS.Publish(ctx, "bili.1.msg.1.2", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != `{"n":1}` {
			t.Fatalf("the reader did not get the event: %v", err)
		}
	})

	t.Run("reads BILI through its consumer", func(t *testing.T) {
		rjs, err := jetstream.NewWithAPIPrefix(reader, "$JS.bili.API")
		if err != nil {
			t.Fatal(err)
		}
		cons, err := rjs.Consumer(ctx, StreamEvents, "reader")
		if err != nil {
			t.Fatalf("the reader's consumer: %v", err)
		}
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("fetching from BILI: %v", err)
		}
		if m.Subject() != "bili.1.msg.1.2" || string(m.Data()) != `{"n":1}` {
			t.Fatalf("fetched %s %s", m.Subject(), m.Data())
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
		info, err := readerCons.Info(ctx)
		if err != nil || info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
			t.Fatalf("the ack did not reach the consumer: %+v %v", info, err)
		}
	})

	t.Run("cannot send", func(t *testing.T) {
		sends, err := full.NC.SubscribeSync("bili.*.send.>")
		if err != nil {
			t.Fatal(err)
		}
		defer sends.Unsubscribe()
		if err := full.NC.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := reader.Publish("bili.1.send.1.2", []byte(`{"command_id":"x","text":"hi"}`)); err != nil {
			t.Fatal(err)
		}
		denied.expect(t, "bili.1.send.1.2")
		if m, err := sends.NextMsg(300 * time.Millisecond); err == nil {
			t.Fatalf("the reader's send command arrived: %s", m.Data)
		}
		if info, err := st.Outbox.Info(ctx); err != nil || info.State.Msgs != 0 {
			t.Fatalf("outbox holds %d commands (%v)", info.State.Msgs, err)
		}
	})

	t.Run("cannot read KV", func(t *testing.T) {
		sub, err := reader.SubscribeSync("$KV.bili_state.>")
		if err == nil {
			denied.expect(t, "$KV.bili_state.>")
			sub.Unsubscribe()
		}
		js, err := jetstream.New(reader)
		if err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.KeyValue(short, BucketState); err == nil {
			t.Fatal("the reader opened the state bucket")
		}
		denied.expect(t, "$JS.API.STREAM.INFO.KV_bili_state")
	})

	t.Run("cannot use the bridge's consumers", func(t *testing.T) {
		for _, subj := range []string{
			"$JS.bili.API.CONSUMER.MSG.NEXT.BILI.webhook",
			"$JS.API.CONSUMER.MSG.NEXT.BILI.webhook",
			"$JS.API.CONSUMER.DELETE.BILI.webhook",
		} {
			if err := reader.PublishRequest(subj, reader.NewRespInbox(), []byte(`{"batch":1}`)); err != nil {
				t.Fatal(err)
			}
			denied.expect(t, subj)
		}
		if _, err := full.JS.Consumer(ctx, StreamEvents, "webhook"); err != nil {
			t.Fatalf("the sink's consumer: %v", err)
		}
	})

	// A reply subject is not subject to publish permissions: with the
	// reader in the bridge's account, the server itself would deliver
	// BILI events to a reply subject of the reader's choice, such as a
	// send subject or a KV key. In an account of its own, such replies
	// stay there.
	t.Run("reply subjects stay in the reader's account", func(t *testing.T) {
		const next = "$JS.bili.API.CONSUMER.MSG.NEXT.BILI.reader"
		pull := []byte(`{"batch":1,"expires":10000000000}`)
		for _, reply := range []string{"bili.1.send.1.2", "$KV.bili_state.discord"} {
			if err := reader.PublishRequest(next, reply, pull); err != nil {
				t.Fatal(err)
			}
		}
		// A pull of its own after those: once it is served, the two
		// before it were served or dropped.
		inbox := reader.NewInbox()
		own, err := reader.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer own.Unsubscribe()
		if err := reader.PublishRequest(next, inbox, pull); err != nil {
			t.Fatal(err)
		}
		if err := reader.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := full.JS.Publish(ctx, "bili.1.msg.1.2", fmt.Appendf(nil, `{"n":%d}`, i+2)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := own.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("the reader's own pull: %v", err)
		}
		if info, err := st.Outbox.Info(ctx); err != nil || info.State.Msgs != 0 {
			t.Errorf("outbox holds %d commands (%v)", info.State.Msgs, err)
		}
		if e, err := st.State.Get(ctx, "discord"); err != nil || string(e.Value()) != webhookToken {
			t.Errorf("the state bucket was overwritten: %v", err)
		}
	})
}

// A second server on the same store, a taken port and an unusable data
// directory each fail in one sentence naming what to change (before, the
// server only never became ready, and the start hung 15 s).
func TestEmbeddedStartFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	first, err := StartEmbedded(EmbeddedConfig{Listen: "off", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Shutdown)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  EmbeddedConfig
		want string
	}{
		{"store in use", EmbeddedConfig{Listen: "off", StoreDir: dir}, "in use by another bilibridge process"},
		{"port taken", EmbeddedConfig{Listen: taken.Addr().String(), StoreDir: t.TempDir()}, "NATS_LISTEN " + taken.Addr().String() + " is taken"},
		{"data dir is a file", EmbeddedConfig{Listen: "off", StoreDir: filepath.Join(file, "nats")}, "DATA_DIR: cannot create the NATS store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := StartEmbedded(tc.cfg)
			if err == nil {
				ns.Shutdown()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err %q, want one line with %q", err, tc.want)
			}
		})
	}
	// Once the first stops, the store is free again.
	first.Shutdown()
	first.WaitForShutdown()
	again, err := StartEmbedded(EmbeddedConfig{Listen: "off", StoreDir: dir})
	if err != nil {
		t.Fatalf("the store after the first server stopped: %v", err)
	}
	again.Shutdown()
}
