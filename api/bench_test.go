package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

// The team inbox with a big state (the sizes): 10,000
// conversations and 200,000 message events on stream BILI, of which 10
// "hot" conversations hold 2,000 messages each and the others about 18;
// then team actions: 30 % of the conversations assigned, 20 % done. The
// messages are interleaved at random (a conversation's messages are spread
// over the whole stream). BILIBRIDGE_BENCH_CONVERSATIONS and
// BILIBRIDGE_BENCH_MESSAGES size a quicker run; BILIBRIDGE_BENCH_PROFILES
// names a directory for a CPU profile of each sub-benchmark.
//
// Everything is real and shares the machine: an embedded NATS server
// (JetStream on disk), the team projection and service as a bridge
// process runs them, the API over loopback HTTP, its clients. Nothing is
// asserted about time; the figures are reported:
//
//	go test ./api -run '^$' -bench BenchmarkTeamInbox -benchtime 1x -timeout 30m
const (
	benchConversations = 10_000
	benchMessages      = 200_000
	benchHot           = 10 // conversations with a tenth of the messages
	// settle lets NATS drop the message blocks it cached while the stream
	// was read (the file store keeps them 10 s) before the heap is measured.
	settle = 11 * time.Second
)

// BenchmarkTeamInbox builds the state once, then measures it in
// sub-benchmarks: memory, list pages, message pages (first and warm), an
// event reaching 50 event-stream clients, and the projection catching up
// from the stream (rebuild) or from its saved state (resume).
func BenchmarkTeamInbox(b *testing.B) {
	f := newInbox(b, envInt(b, "BILIBRIDGE_BENCH_CONVERSATIONS", benchConversations), envInt(b, "BILIBRIDGE_BENCH_MESSAGES", benchMessages))

	for _, sub := range []struct {
		name string
		fn   func(*testing.B)
	}{
		{"memory", f.benchMemory},

		{"list/default", func(b *testing.B) { f.benchList(b, "", 500) }},
		{"list/open-unassigned", func(b *testing.B) { f.benchList(b, "?status=open&assignee=none", 500) }},
		{"list/search", func(b *testing.B) { f.benchList(b, "?q=refund", 500) }},
		{"list/next-page", func(b *testing.B) { f.benchList(b, "?cursor="+url.QueryEscape(f.cursor), 500) }},

		// First calls build a conversation's index from the stream; warm
		// ones read it. A typical conversation has about 18 messages, a
		// hot one 2,000 (the page is the newest 50).
		// After quiet, the first call also waits for the NATS server to
		// load again the stream blocks it dropped (a member opening a
		// conversation when nobody has read the stream for 10 s).
		{"messages/first", func(b *testing.B) { f.benchMessages(b, &f.typical, 200, true, 0) }},
		{"messages/first-after-quiet", func(b *testing.B) { f.benchMessages(b, &f.typical, 5, true, settle) }},
		{"messages/warm", func(b *testing.B) { f.benchMessages(b, &f.typical, 500, false, 0) }},
		{"messages/first-hot", func(b *testing.B) { f.benchMessages(b, &f.hotPool, len(f.hotPool.fresh), true, 0) }},
		{"messages/warm-hot", func(b *testing.B) { f.benchMessages(b, &f.hotPool, 200, false, 0) }},

		{"events/50-clients", func(b *testing.B) { f.benchEvents(b, 50, 200, 10*time.Millisecond, "") }},
		{"events/50-clients-burst", func(b *testing.B) { f.benchEvents(b, 50, 200, 0, "") }},
		// The same while another client searches the list back to back
		// (the list holds the projection's read lock while it scans).
		{"events/50-clients-while-searching", func(b *testing.B) { f.benchEvents(b, 50, 200, 10*time.Millisecond, "?q=refund") }},

		{"rebuild/read-only", f.benchRebuild},
		{"rebuild/first-start", f.benchFirstStart},
		{"resume", f.benchResume},
	} {
		b.Run(sub.name, profiled(sub.name, sub.fn))
	}
}

// profiled runs fn with a CPU profile of its own, written to
// $BILIBRIDGE_BENCH_PROFILES/<name>.pprof when that is set (not together
// with go test -cpuprofile: one CPU profile at a time).
func profiled(name string, fn func(b *testing.B)) func(b *testing.B) {
	return func(b *testing.B) {
		dir := os.Getenv("BILIBRIDGE_BENCH_PROFILES")
		if dir == "" {
			fn(b)
			return
		}
		out, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".pprof"))
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
		fn(b)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// inbox is the state every sub-benchmark measures.
type inbox struct {
	rig    *teamtest.Rig
	proc   *team.Projection
	svc    *team.Service
	srv    *httptest.Server
	client *http.Client

	convs     []events.ConversationKey
	seqno     map[events.ConversationKey]uint64
	typical   pool // conversations with few messages, never opened yet
	hotPool   pool // the hot conversations
	live      []events.ConversationKey
	key       atomic.Uint64 // the last msg_key used
	liveNext  atomic.Uint64
	cursor    string // the default page's next_cursor
	messages  int
	teamActs  int
	streamMB  float64
	before    memSample // NATS provisioned, nothing loaded
	loaded    memSample // the stream loaded, no projection
	withState memSample // the projection caught up and saved
	loadTook  time.Duration
	startTook time.Duration // first start: the projection caught up
	saveTook  time.Duration // first start: every conversation saved to KV
}

// pool hands out conversations: fresh ones for first calls, then the
// opened ones again for warm calls.
type pool struct {
	fresh  []events.ConversationKey
	opened []events.ConversationKey
}

func newInbox(b *testing.B, nConvs, nMsgs int) *inbox {
	b.Helper()
	b.Logf("building the state: %d conversations, %d messages", nConvs, nMsgs)
	f := &inbox{rig: teamtest.New(b), seqno: map[events.ConversationKey]uint64{}, messages: nMsgs}
	f.key.Store(7354295169819585000)
	f.before = sampleMem(0)

	// Conversations: the first benchHot are the hot ones.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range nConvs {
		k := events.ConversationKey{AccountUID: teamtest.UID, SessionType: 1, TalkerID: 100_000_000 + uint64(i)*7919}
		f.convs = append(f.convs, k)
		switch {
		case i < benchHot:
			f.hotPool.fresh = append(f.hotPool.fresh, k)
		case i%10 == 9:
			f.live = append(f.live, k) // open and unassigned: the event benchmarks write there
		default:
			f.typical.fresh = append(f.typical.fresh, k)
		}
	}
	rng.Shuffle(len(f.typical.fresh), func(i, j int) { f.typical.fresh[i], f.typical.fresh[j] = f.typical.fresh[j], f.typical.fresh[i] })

	// Which conversation each message goes to, in stream order: a tenth of
	// them to the hot ones, the rest evenly; every conversation has one.
	plan := make([]int, 0, nMsgs)
	hotMsgs := 0
	if nConvs > benchHot {
		hotMsgs = nMsgs / 10
	}
	for i := range hotMsgs {
		plan = append(plan, i%benchHot)
	}
	rest := nConvs - benchHot
	if hotMsgs == 0 {
		rest = nConvs
	}
	for i := 0; len(plan) < nMsgs; i++ {
		plan = append(plan, nConvs-rest+i%rest)
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	// Message times: one a second, ending now.
	start := time.Now()
	at := start.Add(-time.Duration(nMsgs) * time.Second).UTC()
	pub := newBulk(b, f.rig.Conn.JS)
	for i, ci := range plan {
		k := f.convs[ci]
		dir := events.DirectionIn
		if rng.IntN(10) < 3 {
			dir = events.DirectionOut
		}
		subject, id, data := f.messageEvent(k, dir, benchText(rng, i), at.Add(time.Duration(i)*time.Second))
		pub.publish(subject, id, data)
	}
	// Team actions, after the messages (an incoming message after a
	// "done" would reopen the conversation and the projection publish
	// that): 30 % assigned, 20 % done.
	members := []string{"ana", "bo", "chen"}
	for i, k := range f.convs {
		conv := events.Conversation{SessionType: k.SessionType, TalkerID: k.TalkerID, Kind: events.ConversationUser}
		base := events.TeamBase{AccountUID: k.AccountUID, Conversation: conv, By: events.Actor{Member: "ana"}}
		var typ string
		var data any
		switch i % 10 {
		case 0, 1, 2:
			who := members[i%len(members)]
			typ, data = events.TypeTeamAssigned, events.AssignedData{TeamBase: base, Assignee: &who}
		case 3, 4:
			typ, data = events.TypeTeamStatus, events.StatusData{TeamBase: base, Status: events.ConversationDone}
		default:
			continue
		}
		id := fmt.Sprintf("%d-team-bench-%d", k.AccountUID, i)
		ev, err := events.New(k.AccountUID, typ, id, k.Subject(), time.Now(), data)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := ev.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		pub.publish(events.Subjects{}.Team(k.AccountUID, k.SessionType, k.TalkerID), id, raw)
		f.teamActs++
	}
	pub.flush()
	f.loadTook = time.Since(start)
	info, err := f.rig.Store.Events.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	f.streamMB = float64(info.State.Bytes) / 1e6
	b.Logf("stream BILI: %d events, %.1f MB, published in %s", info.State.Msgs, f.streamMB, f.loadTook.Round(time.Millisecond))
	f.loaded = sampleMem(settle)

	// The team state as a bridge process starts it the first time: nothing
	// saved, built from the stream, saved to KV as it goes.
	p, took, _ := runProjection(b, team.ProjectionConfig{
		Stream: f.rig.Store.Events, KV: f.rig.Store.Conversations, Publisher: f.rig.Pub,
		Leases: f.rig.Store.Leases, LeaseTTL: time.Second, // the rig's lease bucket has a 1 s TTL
	})
	f.proc, f.startTook = p, took
	f.saveTook = waitSaved(b, f.rig.Store.Conversations, p.Applied(), time.Now().Add(-took))
	b.Logf("first start: caught up in %s, every conversation saved in %s", f.startTook.Round(time.Millisecond), f.saveTook.Round(time.Millisecond))
	f.svc = team.NewService(team.ServiceConfig{Projection: p, Publisher: f.rig.Pub, Members: f.rig.Members})
	f.srv = httptest.NewServer(api.New(api.Config{
		Token:       serviceToken,
		Members:     f.rig.Members,
		Outbox:      &send.Outbox{NC: f.rig.Conn.NC, JS: f.rig.Conn.JS, Records: f.rig.Store.Records, Accounts: []int64{teamtest.UID}},
		Team:        f.svc,
		Projection:  p,
		Stream:      f.rig.Store.Events,
		DeadLetters: &sinks.DeadLetters{Stream: f.rig.Store.Events, Records: f.rig.Store.Records, Publisher: f.rig.Pub},
	}))
	b.Cleanup(f.srv.Close)
	f.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.Cleanup(f.client.CloseIdleConnections)

	// Sanity: the API sees the whole state.
	var page struct {
		Conversations []json.RawMessage `json:"conversations"`
		NextCursor    string            `json:"next_cursor"`
	}
	if _, body := f.get(b, "/api/v1/conversations"); json.Unmarshal(body, &page) != nil || len(page.Conversations) != min(50, nConvs) {
		b.Fatalf("the first page: %.300s", body)
	}
	f.cursor = page.NextCursor
	f.withState = sampleMem(settle)
	return f
}

// messageEvent builds a text message event in conversation k, as the
// poller publishes it (teamtest.Rig.Message's shape, with Bilibili's raw
// content and an avatar as real events carry).
func (f *inbox) messageEvent(k events.ConversationKey, direction, text string, at time.Time) (subject, id string, data []byte) {
	key := f.key.Add(1)
	f.seqno[k]++
	name := "粉丝" + strconv.FormatUint(k.TalkerID, 10)
	sender := int64(k.TalkerID)
	if direction == events.DirectionOut {
		sender = k.AccountUID
	}
	content, _ := json.Marshal(map[string]string{"content": text})
	id = events.MessageID(k.AccountUID, key)
	ev, err := events.New(k.AccountUID, events.TypeMessage, id, k.Subject(), at, events.MessageData{
		AccountUID: k.AccountUID,
		Conversation: events.Conversation{SessionType: k.SessionType, TalkerID: k.TalkerID, Kind: events.ConversationUser, Name: name,
			Avatar: "https://i0.hdslb.com/bfs/face/" + strconv.FormatUint(k.TalkerID, 16) + "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39.jpg"},
		Message: events.Message{MsgKey: key, Seqno: f.seqno[k], Direction: direction, SenderUID: sender,
			Timestamp: at, MsgType: 1, Kind: events.KindText, Text: text, Status: events.StatusNormal, Content: content},
	})
	if err != nil {
		panic(err)
	}
	data, err = ev.Marshal()
	if err != nil {
		panic(err)
	}
	return events.Subjects{}.Message(k.AccountUID, k.SessionType, k.TalkerID), id, data
}

var benchTexts = []string{
	"你好，请问下次直播是什么时候？",
	"thanks for the video, the part about the camera settings was really useful!",
	"可以合作吗？我们是一家游戏公司，想请你试玩我们的新作",
	"refund for order #%d please, the package never arrived",
	"收到，谢谢",
	"what camera and lens do you use for the outdoor shots?",
	"第%d期的视频太好看了，什么时候出下一期",
	"ok",
}

func benchText(rng *rand.Rand, i int) string {
	t := benchTexts[rng.IntN(len(benchTexts))]
	if strings.Contains(t, "%d") {
		return fmt.Sprintf(t, 1000+i%9000)
	}
	return t
}

// bulk publishes asynchronously, a thousand in flight at most, checking
// every ack.
type bulk struct {
	b       *testing.B
	js      jetstream.JetStream
	futures []jetstream.PubAckFuture
}

func newBulk(b *testing.B, js jetstream.JetStream) *bulk { return &bulk{b: b, js: js} }

func (p *bulk) publish(subject, id string, data []byte) {
	fut, err := p.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}, jetstream.WithMsgID(id))
	if err != nil {
		p.b.Fatalf("publishing %s: %v", subject, err)
	}
	p.futures = append(p.futures, fut)
	if len(p.futures) == 1000 {
		p.flush()
	}
}

func (p *bulk) flush() {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		p.b.Fatal("JetStream did not ack the bulk publishes within a minute")
	}
	for _, fut := range p.futures {
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			p.b.Fatalf("publishing %s: %v", fut.Msg().Subject, err)
		}
	}
	p.futures = p.futures[:0]
}

// runProjection starts a projection and returns it once it caught up,
// with the time that took (loading any saved state included), and the
// function that stops it; it stops at the latest when the benchmark that
// started it ends.
func runProjection(b *testing.B, cfg team.ProjectionConfig) (*team.Projection, time.Duration, func()) {
	b.Helper()
	p := team.NewProjection(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); _ = p.Run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	b.Cleanup(stop)
	for !p.Ready() {
		if time.Since(start) > 10*time.Minute {
			b.Fatal("the projection did not catch up within 10 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	return p, time.Since(start), stop
}

// waitSaved waits until kv's checkpoint reaches seq and returns the time
// since start.
func waitSaved(b *testing.B, kv jetstream.KeyValue, seq uint64, start time.Time) time.Duration {
	b.Helper()
	for {
		if e, err := kv.Get(context.Background(), "checkpoint"); err == nil {
			if n, _ := strconv.ParseUint(string(e.Value()), 10, 64); n >= seq {
				return time.Since(start)
			}
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatal("the state was not saved within 10 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get GETs path with the service token, reads the whole answer and
// returns the time that took.
func (f *inbox) get(b *testing.B, path string) (time.Duration, []byte) {
	b.Helper()
	took, body, err := f.fetch(path)
	if err != nil {
		b.Fatal(err)
	}
	return took, body
}

// fetch is get for any goroutine.
func (f *inbox) fetch(path string) (time.Duration, []byte, error) {
	req, err := http.NewRequest("GET", f.srv.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+serviceToken)
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("GET %s: %d %.300s %v", path, resp.StatusCode, body, err)
	}
	return took, body, nil
}

// benchList GETs the conversation list with query, samples times per
// iteration, one after the other.
func (f *inbox) benchList(b *testing.B, query string, samples int) {
	var lat []time.Duration
	var size, n int
	for range b.N {
		for range samples {
			took, body := f.get(b, "/api/v1/conversations"+query)
			lat = append(lat, took)
			size = len(body)
			n = bytes.Count(body, []byte(`"talker_id"`))
		}
	}
	d := summarize(lat)
	d.report(b)
	b.ReportMetric(float64(n), "convs/page")
	b.Logf("GET /api/v1/conversations%s: %s over %d requests; %d conversations, %d bytes a page", query, d, len(lat), n, size)
}

// benchMessages GETs message pages of conversations from pl: first calls
// take fresh conversations (each builds its index), warm calls go round
// the opened ones; each call after a pause without requests.
func (f *inbox) benchMessages(b *testing.B, pl *pool, samples int, first bool, pause time.Duration) {
	var lat []time.Duration
	var msgs int
	for range b.N {
		for i := range samples {
			var k events.ConversationKey
			if first {
				if len(pl.fresh) == 0 {
					break // every one opened already (-benchtime above 1x)
				}
				k, pl.fresh = pl.fresh[0], pl.fresh[1:]
				pl.opened = append(pl.opened, k)
			} else {
				if len(pl.opened) == 0 {
					b.Fatal("no opened conversation: run the first-call benchmark first")
				}
				k = pl.opened[i%len(pl.opened)]
			}
			b.StopTimer()
			time.Sleep(pause)
			b.StartTimer()
			took, body := f.get(b, convPath(k, "/messages?limit=50"))
			var page struct {
				Messages []json.RawMessage `json:"messages"`
			}
			if json.Unmarshal(body, &page) != nil || len(page.Messages) == 0 {
				b.Fatalf("messages of %s: %.300s", k, body)
			}
			lat = append(lat, took)
			msgs = len(page.Messages)
		}
	}
	d := summarize(lat)
	d.report(b)
	b.ReportMetric(float64(msgs), "msgs/page")
	kind := "warm"
	if first {
		kind = "first call"
	}
	if pause > 0 {
		kind += fmt.Sprintf(" after %s of quiet", pause)
	}
	b.Logf("GET …/messages?limit=50, %s: %s over %d requests (%d messages a page)", kind, d, len(lat), msgs)
}

// benchEvents connects clients to GET /api/v1/events, publishes n
// message events every gap (0: as fast as each publish is acked) and
// measures, for every client and event, from the publish call to the
// event's arrival at the client. With busyList, another client GETs the
// conversation list with that query back to back meanwhile.
func (f *inbox) benchEvents(b *testing.B, clients, n int, gap time.Duration, busyList string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	cs := make([]*sseRecorder, clients)
	for i := range cs {
		cs[i] = connectSSE(b, ctx, &http.Client{Transport: tr}, f.srv.URL, &wg)
	}
	publish := func() (uint64, time.Time) {
		k := f.live[f.liveNext.Add(1)%uint64(len(f.live))]
		subject, id, data := f.messageEvent(k, events.DirectionIn, "live "+time.Now().Format(time.RFC3339Nano), time.Now())
		ev, err := events.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		at := time.Now()
		seq, err := f.rig.Pub.PublishSeq(ctx, subject, ev)
		if err != nil {
			b.Fatalf("publishing %s: %v", id, err)
		}
		return seq, at
	}
	waitAll := func(seq uint64) {
		deadline := time.Now().Add(time.Minute)
		for _, c := range cs {
			for c.last.Load() < seq {
				if time.Now().After(deadline) {
					b.Fatalf("a client did not get event %d within a minute", seq)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	// Events first, until every client had one: a client is subscribed
	// then. (One event is not enough: the server answers a new client
	// before it notes where the client's stream starts, so an event
	// applied in between is not sent to that client.)
	warmup := time.Now()
	for slices.ContainsFunc(cs, func(c *sseRecorder) bool { return c.last.Load() == 0 }) {
		if time.Since(warmup) > time.Minute {
			b.Fatal("a client got no event within a minute")
		}
		publish()
		time.Sleep(20 * time.Millisecond)
	}
	seq, _ := publish()
	waitAll(seq)

	var lists atomic.Int64
	if busyList != "" {
		stop := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := f.fetch("/api/v1/conversations" + busyList); err != nil {
					b.Error(err)
					return
				}
				lists.Add(1)
			}
		}()
		defer func() { close(stop); <-stopped }()
	}
	var lat, pubLat []time.Duration
	var lost int
	for range b.N {
		sent := map[uint64]time.Time{}
		var last uint64
		tick := time.Now()
		for range n {
			seq, at := publish()
			sent[seq] = at
			pubLat = append(pubLat, time.Since(at))
			last = seq
			if gap > 0 {
				tick = tick.Add(gap)
				time.Sleep(time.Until(tick))
			}
		}
		waitAll(last)
		for _, c := range cs {
			got := c.take()
			seen := 0
			for _, a := range got {
				if at, ok := sent[a.seq]; ok {
					lat = append(lat, a.at.Sub(at))
					seen++
				}
			}
			lost += len(sent) - seen
		}
	}
	d := summarize(lat)
	d.report(b)
	pd := summarize(pubLat)
	b.ReportMetric(pd.p99, "publish-p99-ms")
	b.ReportMetric(float64(lost), "lost")
	how := fmt.Sprintf("one every %s", gap)
	if gap == 0 {
		how = "back to back"
	}
	if busyList != "" {
		how += fmt.Sprintf(", %d GET /api/v1/conversations%s meanwhile", lists.Load(), busyList)
	}
	b.Logf("%d events (%s) to %d clients of GET /api/v1/events: publish → arrival %s over %d deliveries, %d lost; the publish call itself %s",
		n*b.N, how, clients, d, len(lat), lost, pd)
}

// sseRecorder is a client of the event stream that notes when each event
// arrived.
type sseRecorder struct {
	mu   sync.Mutex
	got  []arrival
	last atomic.Uint64
}

type arrival struct {
	seq uint64
	at  time.Time
}

func (c *sseRecorder) take() []arrival {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	return out
}

func connectSSE(b *testing.B, ctx context.Context, client *http.Client, base string, wg *sync.WaitGroup) *sseRecorder {
	b.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+serviceToken)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /api/v1/events: %d", resp.StatusCode)
	}
	c := &sseRecorder{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer resp.Body.Close()
		rd := bufio.NewReaderSize(resp.Body, 64<<10)
		var id uint64
		for {
			line, err := rd.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
			switch {
			case len(bytes.TrimSpace(line)) == 0:
				if id != 0 {
					now := time.Now()
					c.mu.Lock()
					c.got = append(c.got, arrival{seq: id, at: now})
					c.mu.Unlock()
					c.last.Store(id)
					id = 0
				}
			case bytes.HasPrefix(line, []byte("id: ")):
				id, _ = strconv.ParseUint(string(bytes.TrimSpace(line[4:])), 10, 64)
			}
			// The rest of a long data line comes with ErrBufferFull: skipped.
			for err == bufio.ErrBufferFull {
				_, err = rd.ReadSlice('\n')
			}
		}
	}()
	return c
}

// benchRebuild builds a second, read-only projection from the start of
// the stream (no saved state, no KV), and measures how much heap it holds.
func (f *inbox) benchRebuild(b *testing.B) {
	var took []time.Duration
	var heap float64
	var applied uint64
	collected := true
	for range b.N {
		p, d, stop := runProjection(b, team.ProjectionConfig{Stream: f.rig.Store.Events})
		took = append(took, d)
		applied = p.Applied()
		stop()
		// Its heap: with it, then without it.
		gone := weak.Make(p)
		with := sampleMem(settle)
		runtime.KeepAlive(p)
		without := sampleMem(settle)
		collected = collected && gone.Value() == nil
		heap = with.heapAllocMB - without.heapAllocMB
	}
	if !collected {
		b.Log("the projection was not collected after it stopped: its heap figure means nothing")
	}
	s := slices.Max(took).Seconds()
	b.ReportMetric(s, "catch-up-s")
	b.ReportMetric(float64(applied)/s, "events/s")
	b.ReportMetric(heap, "proj-heap-MB")
	b.ReportMetric(heap*1e6/float64(len(f.convs)), "B/conv")
	b.Logf("rebuild from the stream (read-only projection, no KV): %d events in %.2f s (%.0f events/s); the projection holds %.1f MB of heap, %.0f B per conversation",
		applied, s, float64(applied)/s, heap, heap*1e6/float64(len(f.convs)))
}

// benchFirstStart is a bridge's first start on this stream: nothing
// saved (a fresh bucket), built from the stream, saved to KV as it goes.
func (f *inbox) benchFirstStart(b *testing.B) {
	var ready, saved time.Duration
	for i := range b.N {
		ctx := context.Background()
		bucket := fmt.Sprintf("bench_conversations_%d_%d", time.Now().UnixNano(), i)
		kv, err := f.rig.Conn.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Storage: jetstream.FileStorage})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		p, d, stop := runProjection(b, team.ProjectionConfig{Stream: f.rig.Store.Events, KV: kv})
		ready = d
		saved = waitSaved(b, kv, p.Applied(), start)
		stop()
		if err := f.rig.Conn.JS.DeleteKeyValue(ctx, bucket); err != nil {
			b.Logf("deleting bucket %s: %v", bucket, err)
		}
	}
	b.ReportMetric(ready.Seconds(), "catch-up-s")
	b.ReportMetric(saved.Seconds(), "saved-s")
	b.Logf("first start (fresh KV bucket): caught up in %.2f s, every conversation saved in %.2f s; the fixture's own first start: %.2f s and %.2f s",
		ready.Seconds(), saved.Seconds(), f.startTook.Seconds(), f.saveTook.Seconds())
}

// benchResume is a restart: the saved conversations loaded from KV (one
// read each), then the stream after the checkpoint.
func (f *inbox) benchResume(b *testing.B) {
	var took time.Duration
	for range b.N {
		// Another holder: the fixture's projection keeps the lease, this
		// one only reads.
		_, took, _ = runProjection(b, team.ProjectionConfig{
			Stream: f.rig.Store.Events, KV: f.rig.Store.Conversations, Leases: f.rig.Store.Leases, LeaseTTL: time.Second,
		})
	}
	b.ReportMetric(took.Seconds(), "catch-up-s")
	b.Logf("restart from the saved state (%d conversations in KV): caught up in %.2f s", len(f.convs), took.Seconds())
}

// benchMemory reports the process's memory with the state loaded.
func (f *inbox) benchMemory(b *testing.B) {
	m := f.withState
	for range b.N {
		m = sampleMem(settle)
	}
	b.ReportMetric(m.rssMB, "rss-MB")
	b.ReportMetric(m.heapInuseMB, "heap-MB")
	b.ReportMetric(f.loaded.rssMB, "rss-stream-only-MB")
	b.ReportMetric(f.loaded.heapInuseMB, "heap-stream-only-MB")
	b.ReportMetric(f.streamMB, "stream-MB")
	b.Logf("memory: empty %s; stream loaded (%d messages, %d team actions, %.1f MB on disk, published in %s), no projection: %s; projection caught up and saved: %s; now %s (peak RSS of the run, the bulk load included: %.1f MB)",
		f.before, f.messages, f.teamActs, f.streamMB, f.loadTook.Round(time.Millisecond), f.loaded, f.withState, m, m.hwmMB)
}

// memSample is the process's memory after a GC.
type memSample struct {
	rssMB, hwmMB, heapInuseMB, heapAllocMB float64
}

func (m memSample) String() string {
	return fmt.Sprintf("RSS %.1f MB, heap in use %.1f MB (live %.1f MB)", m.rssMB, m.heapInuseMB, m.heapAllocMB)
}

// sampleMem waits d, collects garbage, returns what was freed to the OS
// and reads the heap and /proc/self/status.
func sampleMem(d time.Duration) memSample {
	time.Sleep(d)
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memSample{heapInuseMB: float64(ms.HeapInuse) / 1e6, heapAllocMB: float64(ms.HeapAlloc) / 1e6}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch name {
		case "VmRSS":
			m.rssMB = kb / 1000
		case "VmHWM":
			m.hwmMB = kb / 1000
		}
	}
	return m
}

// latencies are a sample's percentiles, in milliseconds.
type latencies struct{ p50, p99, max float64 }

func summarize(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		return float64(s[max(0, min(i, len(s)-1))]) / 1e6
	}
	return latencies{p50: at(0.50), p99: at(0.99), max: float64(s[len(s)-1]) / 1e6}
}

func (l latencies) report(b *testing.B) {
	b.ReportMetric(l.p50, "p50-ms")
	b.ReportMetric(l.p99, "p99-ms")
	b.ReportMetric(l.max, "max-ms")
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms", l.p50, l.p99, l.max)
}
