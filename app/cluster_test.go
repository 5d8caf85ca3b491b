package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/bilibridge/bilibridge/app"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge/bridgetest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
)

// TestClusterFailover runs two bridges on a 3-node JetStream cluster with
// replicas 3, kills the NATS node the polling bridge is connected to, then
// stops the polling bridge; the other takes the poller lease over and
// every message still reaches the webhook once and in order.
func TestClusterFailover(t *testing.T) {
	cluster := bridgetest.StartCluster(t, 3)
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	talkers := []int64{friend, 2239814, 3493118494116797}
	for _, tk := range talkers {
		fake.AddUser(bilitest.User{UID: tk, Name: fmt.Sprint("u", tk), FollowsAccount: true})
	}

	var mu sync.Mutex
	got := map[string]int{}     // webhook-id → deliveries
	order := map[uint64][]int{} // talker → message numbers in arrival order
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := events.Parse(body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		var d events.MessageData
		ev.DecodeData(&d)
		var n int
		fmt.Sscanf(d.Message.Text, "m%d", &n)
		mu.Lock()
		if got[ev.ID] == 0 {
			order[d.Conversation.TalkerID] = append(order[d.Conversation.TalkerID], n)
		}
		got[ev.ID]++
		mu.Unlock()
		w.WriteHeader(204)
	}))
	defer recv.Close()

	startBridge := func() *running {
		cfg := testConfig(t, fake, t.TempDir())
		cfg.NATSURL, cfg.NATSReplicas, cfg.WebhookURLs, cfg.HTTPAddr = cluster.URL(), 3, recv.URL, ""
		return startApp(t, app.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})
	}
	r1, r2 := startBridge(), startBridge()
	a1, a2 := r1.app, r2.app

	n := 0
	deliver := func(count int) {
		for range count {
			n++
			tk := talkers[n%len(talkers)]
			fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(tk), MsgType: 1, Content: bilitest.TextContent(fmt.Sprintf("m%d", n))})
		}
	}
	delivered := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	leader := func() (*app.App, *app.App) {
		if a1.Accounts[0].Poller.Status().Leader {
			return a1, a2
		}
		return a2, a1
	}
	bridgetest.Eventually(t, "a polling bridge", func() bool {
		return a1.Accounts[0].Poller.Status().Leader || a2.Accounts[0].Poller.Status().Leader
	})
	deliver(30)
	bridgetest.Eventually(t, "the first 30", func() bool { return delivered() == 30 })

	// Kill the NATS node the polling bridge is connected to.
	poll, _ := leader()
	node := cluster.Node(poll.Conn.NC.ConnectedUrl())
	if node < 0 {
		t.Fatalf("polling bridge connected to %q, not a node of the cluster", poll.Conn.NC.ConnectedUrl())
	}
	cluster.Nodes[node].Shutdown()
	deliver(30)
	bridgetest.Eventually(t, "60 after the node died", func() bool { return delivered() == 60 })

	// Stop the polling bridge: the other takes over the lease.
	poll, other := leader()
	if poll == a1 {
		r1.stop()
	} else {
		r2.stop()
	}
	bridgetest.Eventually(t, "the lease to move", func() bool { return other.Accounts[0].Poller.Status().Leader })
	deliver(30)
	bridgetest.Eventually(t, "all 90", func() bool { return delivered() == 90 })

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	t.Logf("90 messages, 1 node killed, 1 bridge stopped: %d delivered, %d duplicate deliveries (same webhook-id)", len(got), dups)
	for tk, seq := range order {
		for i := 1; i < len(seq); i++ {
			if seq[i] < seq[i-1] {
				t.Errorf("talker %d out of order: %v", tk, seq)
				break
			}
		}
	}
}
