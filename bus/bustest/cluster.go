package bustest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of in-process servers on loopback.
type Cluster struct {
	Nodes []*server.Server
	URLs  []string
}

// URL is every node's client URL, comma-separated (for NATS_URL).
func (c *Cluster) URL() string { return strings.Join(c.URLs, ",") }

// Node returns the node whose client URL is url, or -1.
func (c *Cluster) Node(url string) int {
	for i, u := range c.URLs {
		if u == url {
			return i
		}
	}
	return -1
}

// StartCluster starts an n-node JetStream cluster and waits for a meta
// leader; every node is shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	routePorts := make([]int, n)
	var routes []string
	for i := range n {
		routePorts[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	c := &Cluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: 1 << 30, JetStreamMaxMemory: 64 << 20,
			NoSigs:  true,
			Cluster: server.ClusterOpts{Name: "bilibridge-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		if !ns.ReadyForConnections(15 * time.Second) {
			t.Fatalf("node %d did not start", i)
		}
		c.Nodes = append(c.Nodes, ns)
		c.URLs = append(c.URLs, "nats://"+ns.Addr().String())
	}
	Eventually(t, "a JetStream meta leader with every peer", func() bool {
		for _, ns := range c.Nodes {
			if ns.JetStreamIsLeader() && len(ns.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
