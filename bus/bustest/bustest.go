// Package bustest starts real NATS JetStream servers for tests: an
// embedded nats-server on a random loopback port, reached over TCP like a
// deployment would.
package bustest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
)

// Server is a JetStream server for one test.
type Server struct {
	*server.Server
	URL string
	// User and Password are the login the server requires, if any.
	User, Password string
}

// StartServer starts a JetStream server storing under a temp dir; it is
// shut down when the test ends. Its clients need no login.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return StartServerWithLogin(t, "", "")
}

// StartServerWithLogin starts a server like StartServer that requires
// user and password of every client (none when both are empty).
func StartServerWithLogin(t testing.TB, user, password string) *Server {
	t.Helper()
	ns, err := bus.StartEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", User: user, Password: password,
		StoreDir: t.TempDir(), MaxStore: 1 << 30, MaxMemory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return &Server{Server: ns, URL: "nats://" + ns.Addr().String(), User: user, Password: password}
}

// Connect opens a client connection to s, with its login, closed when the
// test ends.
func (s *Server) Connect(t testing.TB) *bus.Conn {
	t.Helper()
	c, err := bus.Connect(context.Background(), bus.NATSConfig{URL: s.URL, User: s.User, Password: s.Password, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Provision creates the streams and buckets with test-sized settings.
func Provision(t testing.TB, c *bus.Conn, leaseTTL time.Duration) *bus.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := bus.Provision(ctx, c.JS, bus.StoreConfig{Subjects: events.Subjects{}, LeaseTTL: leaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Msg is a message read back from a stream.
type Msg struct {
	Subject string
	MsgID   string
	Event   events.Event
}

// StreamEvents returns every message in stream, in stream order.
func StreamEvents(t testing.TB, s jetstream.Stream) []Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		ev, err := events.Parse(raw.Data)
		if err != nil {
			t.Fatalf("stream message %d is not an event: %v", seq, err)
		}
		out = append(out, Msg{Subject: raw.Subject, MsgID: raw.Header.Get("Nats-Msg-Id"), Event: ev})
	}
	return out
}

// Eventually polls cond until it holds or the deadline passes. It waits
// on real work (a goroutine, a server) and asserts nothing about time.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, what, 30*time.Second, cond)
}

// EventuallyWithin is Eventually with another deadline, for what waits on
// a timeout of the system under test (a NATS failover, an AckWait).
func EventuallyWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Keys lists the keys of kv, sorted.
func Keys(t testing.TB, kv jetstream.KeyValue) []string {
	t.Helper()
	l, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Stop() }()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// HasPrefix reports whether one of keys starts with prefix.
func HasPrefix(keys []string, prefix string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix) })
}
