package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

const (
	accountUID int64 = 425503913
	firstPeer  int64 = 600000001
	secret           = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sessdata         = "sess-faults"
	biliJct          = "jct-faults"
)

// --- the fake Bilibili and the messages sent through it ---

// world is the fake Bilibili with one account and its conversations,
// plus the ledger of every message delivered to it.
type world struct {
	fake  *bilitest.Server
	peers []int64

	mu   sync.Mutex
	sent map[string]sentMsg // event id → message
	n    int
}

type sentMsg struct {
	peer  int64
	seqno uint64
}

// newWorld starts the fake with convs conversations, each opened by a
// message the account itself sent (read, so never published at the
// bridge's first start): every message sent later is one the bridge must
// deliver.
func newWorld(t *testing.T, convs int) *world {
	t.Helper()
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: accountUID, Name: "me", SESSDATA: sessdata, BiliJct: biliJct})
	w := &world{fake: fake, sent: map[string]sentMsg{}}
	for i := range convs {
		peer := firstPeer + int64(i)
		fake.AddUser(bilitest.User{UID: peer, Name: fmt.Sprintf("peer%02d", i), FollowsAccount: true})
		fake.Deliver(accountUID, bilitest.Message{SessionType: 1, TalkerID: uint64(peer), SenderUID: accountUID,
			MsgType: 1, Content: bilitest.TextContent("hello")})
		w.peers = append(w.peers, peer)
	}
	return w
}

// send delivers one message from a random peer and records it.
func (w *world) send(rng *rand.Rand) {
	peer := w.peers[rng.IntN(len(w.peers))]
	w.mu.Lock()
	w.n++
	n := w.n
	w.mu.Unlock()
	d := w.fake.Deliver(accountUID, bilitest.Message{SessionType: 1, TalkerID: uint64(peer), MsgType: 1,
		Content: bilitest.TextContent(fmt.Sprintf("message %d", n))})
	w.mu.Lock()
	w.sent[events.MessageID(accountUID, d.MsgKey)] = sentMsg{peer: peer, seqno: d.Seqno}
	w.mu.Unlock()
}

// sendOver sends n messages spread evenly over d, returning when done or
// when ctx ends.
func (w *world) sendOver(ctx context.Context, n int, d time.Duration, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	every := d / time.Duration(n)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		w.send(rng)
	}
}

func (w *world) sentCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sent)
}

// --- the webhook receiver ---

// receiver is a webhook endpoint that verifies every request's signature
// and records what arrived: each webhook-id with its first body and how
// often it came, and per conversation the highest seqno delivered so far,
// to catch a message delivered after a later one of its conversation.
type receiver struct {
	t       testing.TB
	secrets []webhook.Secret
	addr    string

	mu         sync.Mutex
	srv        *http.Server
	failStatus int // answer this instead of 2xx while set
	retryAfter string
	requests   int
	refused    int // requests answered failStatus
	badSig     int
	first      map[string][]byte // id → first body
	count      map[string]int
	diffBody   []string          // ids repeated with another body
	maxSeq     map[uint64]uint64 // talker → highest seqno delivered
	maxID      map[uint64]string // talker → the webhook-id of that seqno
	disorder   []string
	disorderAt [][2]string // per disorder: the late id, and the later id that came before it
	arrived    map[string]time.Time
	attempts   map[string][]attempt   // webhook-id → every request for it, in arrival order
	okAt       map[string][]time.Time // webhook-id → when each accepted (2xx) request for it arrived
	delay      time.Duration          // hold every answer back this long (a slow endpoint)
	hangUp     bool                   // read each request, then close the connection without an answer
}

// attempt is one request for a webhook-id: when it arrived and the
// Retry-After it was answered with ("" when none, or when it succeeded).
type attempt struct {
	at         time.Time
	retryAfter string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	secrets, err := webhook.ParseSecrets(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, secrets: secrets, first: map[string][]byte{}, count: map[string]int{},
		maxSeq: map[uint64]uint64{}, maxID: map[uint64]string{}, arrived: map[string]time.Time{}, attempts: map[string][]attempt{},
		okAt: map[string][]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *receiver) URL() string { return "http://" + r.addr + "/hook" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: connections are refused.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (r *receiver) up() {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Errorf("receiver: listening again on %s: %v", r.addr, err)
		return
	}
	r.serve(ln)
}

// failWith makes every request answer status, with a Retry-After header
// when retryAfter is set (status 0: answer normally again).
func (r *receiver) failWith(status int, retryAfter string) {
	r.mu.Lock()
	r.failStatus, r.retryAfter = status, retryAfter
	r.mu.Unlock()
}

// slowBy holds every answer back by d (0: answer at once again). The
// request is recorded when it arrives: a sender that gives up waiting
// has still delivered.
func (r *receiver) slowBy(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// hangUpOn makes every request be read and then answered by closing the
// connection (on false: answer normally again). Such a request is not a
// delivery: the sender cannot know it arrived and must send it again.
func (r *receiver) hangUpOn(on bool) {
	r.mu.Lock()
	r.hangUp = on
	r.mu.Unlock()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// Taken before anything else: the sender's wait after this request
	// starts once it has the answer, which is later.
	now := time.Now()
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	hangUp, delay := r.hangUp, r.delay
	r.mu.Unlock()
	if hangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection too
	}
	status, retryAfter := r.record(req, body, now)
	if delay > 0 {
		time.Sleep(delay)
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
}

// record checks and records one request and returns the answer.
func (r *receiver) record(req *http.Request, body []byte, now time.Time) (status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	a := attempt{at: now}
	if r.failStatus != 0 {
		a.retryAfter = r.retryAfter
	}
	// The header, not the verified body: a refused request is not
	// verified, and its timing is what matters.
	if id := req.Header.Get("webhook-id"); id != "" {
		r.attempts[id] = append(r.attempts[id], a)
	}
	if r.failStatus != 0 {
		r.refused++
		return r.failStatus, r.retryAfter
	}
	if err := webhook.Verify(r.secrets, req.Header, body, time.Minute, time.Now()); err != nil {
		r.badSig++
		r.t.Errorf("receiver: signature: %v", err)
		return http.StatusBadRequest, ""
	}
	ev, err := events.Parse(body)
	id := req.Header.Get("webhook-id")
	if err != nil || ev.ID != id {
		r.t.Errorf("receiver: body %q with webhook-id %q: %v", body, id, err)
		return http.StatusBadRequest, ""
	}
	r.count[id]++
	r.okAt[id] = append(r.okAt[id], now)
	if prev, ok := r.first[id]; ok {
		if !bytes.Equal(prev, body) {
			r.diffBody = append(r.diffBody, id)
		}
		return http.StatusNoContent, ""
	}
	r.first[id] = body
	r.arrived[id] = time.Now()
	if ev.Type == events.TypeMessage {
		var d events.MessageData
		if err := ev.DecodeData(&d); err != nil {
			r.t.Errorf("receiver: %s: %v", id, err)
		} else {
			talker, seq := d.Conversation.TalkerID, d.Message.Seqno
			if seq <= r.maxSeq[talker] {
				r.disorder = append(r.disorder, fmt.Sprintf("talker %d: seqno %d after %d", talker, seq, r.maxSeq[talker]))
				r.disorderAt = append(r.disorderAt, [2]string{id, r.maxID[talker]})
			} else {
				r.maxSeq[talker], r.maxID[talker] = seq, id
			}
		}
	}
	return http.StatusNoContent, ""
}

// delivered counts the sent messages that arrived at least once.
func (r *receiver) delivered(w *world) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id := range w.sent {
		if r.count[id] > 0 {
			n++
		}
	}
	return n
}

// firstArrivalAfter is when the first webhook-id new to the receiver
// arrived after t (zero if none yet).
func (r *receiver) firstArrivalAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for _, at := range r.arrived {
		if at.After(t) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// checkRetryAfter fails t for every request that came sooner after the
// previous request for the same webhook-id than the Retry-After that one
// was answered with, less slack. It returns how many such waits it
// checked. Both times are arrivals at the receiver; the sender's wait
// starts when it reads the answer, after the first arrival, so the gap
// between arrivals can only be longer than the wait.
func (r *receiver) checkRetryAfter(t *testing.T, slack time.Duration) (checked int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, as := range r.attempts {
		for i := 1; i < len(as); i++ {
			prev := as[i-1]
			if prev.retryAfter == "" {
				continue
			}
			secs, err := strconv.Atoi(prev.retryAfter)
			if err != nil {
				t.Fatalf("Retry-After %q: the check reads seconds only", prev.retryAfter)
			}
			checked++
			want, gap := time.Duration(secs)*time.Second, as[i].at.Sub(prev.at)
			if gap < want-slack {
				t.Errorf("event %s: attempt %d came %s after attempt %d, which was answered Retry-After: %s",
					id, i+1, gap.Round(time.Millisecond), i, prev.retryAfter)
			}
		}
	}
	return checked
}

// waitAll waits until every sent message arrived or the deadline passed.
func (r *receiver) waitAll(w *world, deadline time.Duration) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if r.delivered(w) == w.sentCount() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r.delivered(w) == w.sentCount()
}

// --- the report ---

type report struct {
	Scenario   string
	Faults     string
	Sent       int
	Delivered  int
	Lost       int
	Duplicated int // extra deliveries of an id already delivered
	DupIDs     int // ids delivered more than once
	DiffBody   int
	Disorder   int
	BadSig     int
	Unexpected int // ids never sent (none expected: only msg events are subscribed)
	Requests   int
	Took       time.Duration
}

func (rp report) String() string {
	return fmt.Sprintf("REPORT %s: faults: %s | sent=%d delivered=%d lost=%d duplicated=%d (ids=%d, different body=%d) out-of-order=%d bad-signature=%d unexpected=%d webhook-requests=%d took=%s",
		rp.Scenario, rp.Faults, rp.Sent, rp.Delivered, rp.Lost, rp.Duplicated, rp.DupIDs, rp.DiffBody, rp.Disorder, rp.BadSig, rp.Unexpected, rp.Requests, rp.Took.Round(100*time.Millisecond))
}

// finish builds the report, logs it (and appends it to $FAULTS_REPORT
// when set), and asserts: nothing lost, order kept per conversation,
// every signature valid, and duplicates only ever the same id with the
// same body.
func finish(t *testing.T, scenario, faults string, w *world, r *receiver, start time.Time) report {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := report{Scenario: scenario, Faults: faults, Sent: len(w.sent), DiffBody: len(r.diffBody),
		Disorder: len(r.disorder), BadSig: r.badSig, Requests: r.requests, Took: time.Since(start)}
	var lost []string
	for id := range w.sent {
		if r.count[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range r.count {
		if _, ok := w.sent[id]; !ok {
			rp.Unexpected++
			continue
		}
		rp.Delivered++
		if n > 1 {
			rp.DupIDs++
			rp.Duplicated += n - 1
		}
	}
	rp.Lost = len(lost)
	t.Log(rp.String())
	if f := os.Getenv("FAULTS_REPORT"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, rp.String())
			fh.Close()
		}
	}
	if rp.Lost > 0 {
		slices.Sort(lost)
		t.Errorf("%d messages lost, e.g. %v", rp.Lost, lost[:min(5, len(lost))])
	}
	if rp.Disorder > 0 {
		t.Errorf("%d messages delivered after a later one of their conversation, e.g. %v", rp.Disorder, r.disorder[:min(5, len(r.disorder))])
	}
	if rp.DiffBody > 0 {
		t.Errorf("%d webhook-ids repeated with a different body: %v", rp.DiffBody, r.diffBody[:min(5, len(r.diffBody))])
	}
	if rp.Unexpected > 0 {
		t.Errorf("%d webhook-ids that were never sent", rp.Unexpected)
	}
	if rp.Sent == 0 {
		t.Error("nothing was sent")
	}
	return rp
}

// --- the bridge in this process ---

// bridgeConfig is the configuration of a bridge polling w's fake every
// interval, on the external NATS at natsURL, delivering to r.
func bridgeConfig(t *testing.T, w *world, r *receiver, natsURL string, interval time.Duration) *config.Config {
	u := w.fake.URL()
	cfg := config.Defaults()
	cfg.DataDir, cfg.APIURL, cfg.MainAPIURL, cfg.PassportURL, cfg.WWWURL = t.TempDir(), u, u, u, u
	cfg.PollInterval, cfg.PollUnsafe = interval, true
	cfg.NATSURL, cfg.StreamMaxAge, cfg.HTTPAddr = natsURL, 24*time.Hour, ""
	cfg.WebhookURLs, cfg.WebhookSecret = config.URLList{r.URL()}, secret
	return &cfg
}

// runInProcess runs bridge.Run until the test ends. clientTimeout bounds
// each Bilibili call (the bridge's own default is 15s).
func runInProcess(t *testing.T, cfg *config.Config, w *world, clientTimeout time.Duration, logw io.Writer) *bridge.Bridge {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hc := *w.fake.Client()
	hc.Timeout = clientTimeout
	started := make(chan *bridge.Bridge, 1)
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, bridge.Options{
			Config:     cfg,
			Accounts:   []config.Login{{Credentials: bilibili.Credentials{SESSDATA: sessdata, BiliJct: biliJct}}},
			HTTPClient: &hc,
			Logger:     cfg.Logger(logw),
			Started:    func(a *bridge.Bridge) { started <- a },
		})
	}()
	var a *bridge.Bridge
	select {
	case a = <-started:
	case err := <-done:
		cancel()
		t.Fatalf("bridge did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("bridge did not start within 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("bridge stopped: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("bridge did not stop within 30s")
		}
	})
	return a
}

// waitPolling waits until the bridge made its first new_sessions call,
// that is, its first start (bootstrap) is done.
func waitPolling(t *testing.T, w *world, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for w.fake.Calls("new_sessions") == 0 {
		if time.Now().After(end) {
			t.Fatalf("the bridge made no new_sessions call within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuffer collects a bridge's log; it is printed when the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// grep returns the lines of the log holding s.
func (l *logBuffer) grep(s string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func dumpOnFailure(t *testing.T, name string, l interface{ String() string }) {
	t.Cleanup(func() {
		if t.Failed() {
			s := l.String()
			if len(s) > 20000 {
				s = "…" + s[len(s)-20000:]
			}
			t.Logf("%s log:\n%s", name, s)
		}
	})
}
