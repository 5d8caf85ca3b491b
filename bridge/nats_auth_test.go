package bridge

// Tests of who may use NATS: the embedded server's listener and the
// bridge's own in-process connection. Everything runs against real servers
// over TCP.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// syncBuffer collects a logger's output from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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
			var logs syncBuffer
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
