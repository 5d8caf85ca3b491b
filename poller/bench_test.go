package poller_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/poller"
)

// BenchmarkMessageToAck measures what the poller adds per message between
// a fetch_session_msgs answer and JetStream's ack: content decoding, event
// conversion, JSON encoding and a publish to a real JetStream over TCP.
// It reports p50 and p99 of the single-message latency.
func BenchmarkMessageToAck(b *testing.B) {
	srv := bustest.StartServer(b)
	conn := srv.Connect(b)
	bustest.Provision(b, conn, time.Second)
	pub := &bus.Publisher{JS: conn.JS}
	subj := events.Subjects{}
	src := poller.Source{AccountUID: uid, Conversation: events.Conversation{SessionType: 1, TalkerID: uint64(friend), Kind: "user", Name: "friend"}}
	content := bilitest.TextContent("up主你好，\n催更[doge] 这是一条普通长度的私信，用来测量发布的开销。")
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m := bilibili.Message{SenderUID: friend, ReceiverType: 1, ReceiverID: uint64(uid), MsgType: 1, Content: content,
			MsgSeqno: 1236306587877408 + uint64(i), Timestamp: time.Now().Unix(), MsgKey: 7354295169819585966 + uint64(i), MsgSource: 2}
		start := time.Now()
		ev, err := poller.MessageEvent(src, &m)
		if err != nil {
			b.Fatal(err)
		}
		if err := pub.Publish(ctx, subj.Message(uid, 1, uint64(friend)), ev); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPollCalls reports the Bilibili calls per poll: idle, and with k
// changed conversations (expected 1 and 1+k, plus one user-card lookup per
// conversation seen for the first time).
func BenchmarkPollCalls(b *testing.B) {
	for _, k := range []int{0, 1, 10} {
		b.Run(fmt.Sprintf("changed=%d", k), func(b *testing.B) {
			fake := bilitest.NewServer()
			b.Cleanup(fake.Close)
			fake.AddAccount(bilitest.Account{UID: uid, SESSDATA: "sess", BiliJct: "jct"})
			for j := range k {
				fake.AddUser(bilitest.User{UID: 1000 + int64(j), Name: fmt.Sprint("u", j), FollowsAccount: true})
				fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(1000 + j), MsgType: 1, Content: bilitest.TextContent("x")})
			}
			u := fake.URL()
			client := bilibili.New(bilibili.Config{Credentials: bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct", DedeUserID: fmt.Sprint(uid)},
				Endpoints: bilibili.Endpoints{API: u, MainAPI: u}, HTTPClient: fake.Client(),
				// The account budget would dominate; this counts calls, not pacing.
				Limiter: rate.NewLimiter(rate.Inf, 0)})
			srv := bustest.StartServer(b)
			conn := srv.Connect(b)
			st := bustest.Provision(b, conn, time.Second)
			p := poller.New(poller.Config{AccountUID: uid, API: client, Publisher: &bus.Publisher{JS: conn.JS}, Cursors: st.Cursors})
			ctx := context.Background()
			if err := p.PollOnce(ctx); err != nil { // first start
				b.Fatal(err)
			}
			calls := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for j := range k {
					fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(1000 + j), MsgType: 1, Content: bilitest.TextContent("y")})
				}
				fake.ResetCalls()
				b.StartTimer()
				if err := p.PollOnce(ctx); err != nil {
					b.Fatal(err)
				}
				calls += fake.Calls("new_sessions") + fake.Calls("fetch_session_msgs") + fake.Calls("get_sessions") + fake.Calls("cards") + fake.Calls("nav")
			}
			b.ReportMetric(float64(calls)/float64(b.N), "calls/poll")
		})
	}
}
