package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
)

// TestClusterFailover runs two bridges on a 3-node JetStream cluster with
// replicas 3, kills the NATS node the polling bridge is connected to, then
// stops the polling bridge; the other takes the poller lease over.
//
// What the product guarantees, and the test asserts: every message
// reaches the webhook, each conversation in order. A webhook-id arrives
// twice only when a delivery's ack is lost, which a dying node can do
// (then bounded, see below) and a graceful stop cannot: the stop and the
// takeover repeat nothing. A repeated webhook-id is always the same
// event, byte for byte.
func TestClusterFailover(t *testing.T) {
	cluster := bustest.StartCluster(t, 3)
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	talkers := []int64{friend, 2239814, 3493118494116797}
	for _, tk := range talkers {
		fake.AddUser(bilitest.User{UID: tk, Name: fmt.Sprint("u", tk), FollowsAccount: true})
	}

	recv := newClusterReceiver(t)
	startBridge := func() *running {
		cfg := testConfig(t, fake, t.TempDir())
		cfg.NATSURL, cfg.NATSReplicas, cfg.WebhookURLs, cfg.HTTPAddr = cluster.URL(), 3, config.URLList{recv.srv.URL}, ""
		return startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})
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
	leader := func() (*bridge.Bridge, *bridge.Bridge) {
		if a1.Accounts[0].Poller.Status().Leader {
			return a1, a2
		}
		return a2, a1
	}
	bustest.Eventually(t, "a polling bridge", func() bool {
		return a1.Accounts[0].Poller.Status().Leader || a2.Accounts[0].Poller.Status().Leader
	})
	deliver(30)
	bustest.Eventually(t, "the first 30", func() bool { return recv.delivered() == 30 })

	// Kill the NATS node the polling bridge is connected to.
	poll, _ := leader()
	node := cluster.Node(poll.Conn.NC.ConnectedUrl())
	if node < 0 {
		t.Fatalf("polling bridge connected to %q, not a node of the cluster", poll.Conn.NC.ConnectedUrl())
	}
	cluster.Nodes[node].Shutdown()
	deliver(30)
	// A failover can cost a lease renewal or two and then AckWait (10s)
	// for the events the runtime handed back: on a loaded machine that
	// is more than the usual 30s.
	bustest.EventuallyWithin(t, "60 after the node died", 90*time.Second, func() bool { return recv.delivered() == 60 })
	// Whatever the dead node cost comes back within AckWait: wait until
	// every sink has acked all it was given, so that the duplicates so far
	// are the kill's and any later one is the stop's.
	poll, other := leader()
	settled(t, other)
	killDups := recv.duplicates()
	// The bound. When the node died every message sent so far had reached
	// the webhook, so the runtime held nothing undelivered. What the kill
	// can repeat is a delivery whose ack the cluster had not recorded: a
	// clustered consumer confirms an ack only once it is replicated, and
	// the runtime delivers a conversation's next event only after the
	// previous one's ack was confirmed (or given up on), so at most the
	// last delivery of each conversation was in flight: one per talker.
	if killDups > len(talkers) {
		t.Errorf("%d duplicate deliveries after the node died, want at most %d (one delivery in flight per conversation)", killDups, len(talkers))
	}

	// Stop the polling bridge: the other takes over the lease.
	stop := r2.stop
	if poll == a1 {
		stop = r1.stop
	}
	if err := stop(); err != nil {
		t.Errorf("stopping the polling bridge: %v", err)
	}
	bustest.Eventually(t, "the lease to move", func() bool { return other.Accounts[0].Poller.Status().Leader })
	deliver(30)
	bustest.Eventually(t, "all 90", func() bool { return recv.delivered() == 90 })
	settled(t, other)
	if d := recv.duplicates() - killDups; d != 0 {
		t.Errorf("%d duplicate deliveries after the graceful stop: a stop finishes and acks what is in flight and hands the rest back, so the takeover repeats nothing", d)
	}
	t.Logf("90 messages, 1 node killed, 1 bridge stopped: %d duplicate deliveries (same webhook-id) after the kill", killDups)
	recv.check(t, talkers, n)
}

// settled waits until every sink consumer of a's stream has nothing
// pending and nothing unacked: no redelivery is still to come.
func settled(t *testing.T, a *bridge.Bridge) {
	t.Helper()
	bustest.Eventually(t, "every sink to have acked all it was given", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l := a.Store.Events.ListConsumers(ctx)
		sinks := 0
		for info := range l.Info() {
			if !strings.HasPrefix(info.Name, "sink_") {
				continue
			}
			sinks++
			if info.NumAckPending > 0 || info.NumPending > 0 {
				return false
			}
		}
		return l.Err() == nil && sinks > 0
	})
}

// clusterReceiver is the webhook: it records every delivery of every
// webhook-id, and each conversation's messages in order of first arrival.
type clusterReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      map[string]*receipt // webhook-id → what arrived
	order    map[uint64][]int    // talker → message numbers in order of first arrival
	diffBody []string            // webhook-ids repeated with another body
	bad      []string            // requests that were not a message event
}

type receipt struct {
	talker uint64
	n      int // the message's number: its text is m<n>
	body   []byte
	count  int
}

func newClusterReceiver(t *testing.T) *clusterReceiver {
	t.Helper()
	r := &clusterReceiver{got: map[string]*receipt{}, order: map[uint64][]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *clusterReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ev, err := events.Parse(body)
	var d events.MessageData
	if err == nil {
		err = ev.DecodeData(&d)
	}
	var n int
	if err == nil {
		_, err = fmt.Sscanf(d.Message.Text, "m%d", &n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || ev.Type != events.TypeMessage || ev.ID != req.Header.Get("webhook-id") {
		// Answered 2xx all the same: a 4xx would dead-letter it and hide
		// it from the counts; it is reported by check instead.
		r.bad = append(r.bad, fmt.Sprintf("%.200s (%v)", body, err))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if rc, ok := r.got[ev.ID]; ok {
		rc.count++
		if !bytes.Equal(rc.body, body) {
			r.diffBody = append(r.diffBody, ev.ID)
		}
	} else {
		r.got[ev.ID] = &receipt{talker: d.Conversation.TalkerID, n: n, body: body, count: 1}
		r.order[d.Conversation.TalkerID] = append(r.order[d.Conversation.TalkerID], n)
	}
	w.WriteHeader(http.StatusNoContent)
}

// delivered is how many webhook-ids arrived.
func (r *clusterReceiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// duplicates is how many deliveries repeated a webhook-id.
func (r *clusterReceiver) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	dups := 0
	for _, rc := range r.got {
		dups += rc.count - 1
	}
	return dups
}

// check asserts that messages 1..sent all arrived, each conversation's
// in the order they were sent, and that every repeated webhook-id
// carried the same body.
func (r *clusterReceiver) check(t *testing.T, talkers []int64, sent int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Errorf("%d requests that were not a message event, e.g. %s", len(r.bad), r.bad[0])
	}
	if len(r.diffBody) > 0 {
		t.Errorf("%d webhook-ids repeated with a different body, e.g. %s", len(r.diffBody), r.diffBody[0])
	}
	// Message m<i> went to talkers[i%len(talkers)]: each conversation must
	// have received exactly its messages, ascending (the order check is
	// on first arrivals; a duplicate is a repeat, not a reordering).
	want := map[uint64][]int{}
	for i := 1; i <= sent; i++ {
		tk := uint64(talkers[i%len(talkers)])
		want[tk] = append(want[tk], i)
	}
	for tk, seq := range want {
		if got := r.order[tk]; !slices.Equal(got, seq) {
			t.Errorf("talker %d: got messages %v, want %v", tk, got, seq)
		}
	}
	for tk := range r.order {
		if _, ok := want[tk]; !ok {
			t.Errorf("messages for talker %d, who was sent none: %v", tk, r.order[tk])
		}
	}
}
