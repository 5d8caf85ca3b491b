// Package bench is `bilibridge bench`: the whole pipeline, measured. It
// runs the real bridge (`bilibridge run` as a subprocess, or app.Run in
// this process) with its embedded NATS in a temporary DATA_DIR against an
// in-process fake Bilibili (bilitest) and a local webhook receiver that
// verifies every signature and checks the order of every conversation,
// and reports latency, Bilibili calls, the drain of a backlog after
// downtime, the bridge's RSS and CPU in each phase, and a raw JetStream
// publish → consume loop over the same payloads as the baseline.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/events"
)

// Options configure a run. Zero values take the defaults of Defaults.
type Options struct {
	// PollInterval is the bridge's POLL_INTERVAL (below 5s, POLL_UNSAFE is set).
	PollInterval time.Duration
	// LatencyDuration is how long messages are injected for the latency phase.
	LatencyDuration time.Duration
	// LatencyEvery is the mean gap between injected messages (exponential
	// gaps: messages arrive at random moments).
	LatencyEvery time.Duration
	// IdleDuration is the idle window whose calls are scaled to an hour.
	IdleDuration time.Duration
	// Messages and Conversations size the backlog.
	Messages, Conversations int
	// DrainTimeout bounds the backlog drain.
	DrainTimeout time.Duration
	// InProcess runs the bridge with app.Run in this process instead of a
	// subprocess; the RSS and CPU figures then include the fake and the
	// receiver.
	InProcess bool
	// Bridge is the subprocess's command line; empty means this
	// executable with "run". Its configuration is its environment.
	Bridge []string
	// BridgeEnv is added to the subprocess's environment.
	BridgeEnv []string
	// Log receives the bridge's log; nil keeps it in a temporary file
	// that is quoted when the bridge fails.
	Log io.Writer
	// Progress receives a line as each phase starts; nil: none.
	Progress io.Writer
	// Seed of the injection schedule; 0: from the clock.
	Seed uint64
}

// Defaults are the figures: POLL_INTERVAL=5s, 2 minutes of
// latency, a 30 s idle window, 10,000 messages across 500 conversations.
func Defaults() Options {
	return Options{
		PollInterval: 5 * time.Second, LatencyDuration: 2 * time.Minute, LatencyEvery: 2 * time.Second,
		IdleDuration: 30 * time.Second, Messages: 10_000, Conversations: 500, DrainTimeout: 30 * time.Minute,
	}
}

// Flags registers the command-line flags on fs and returns the options
// they fill.
func Flags(fs *flag.FlagSet) *Options {
	d := Defaults()
	o := &d
	fs.DurationVar(&o.PollInterval, "poll-interval", d.PollInterval, "the bridge's POLL_INTERVAL")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", d.LatencyDuration, "how long messages are injected for the latency figures")
	fs.DurationVar(&o.LatencyEvery, "latency-every", d.LatencyEvery, "mean gap between injected messages (random moments)")
	fs.DurationVar(&o.IdleDuration, "idle-duration", d.IdleDuration, "idle window counted for idle calls per hour")
	fs.IntVar(&o.Messages, "messages", d.Messages, "backlog: messages waiting after downtime")
	fs.IntVar(&o.Conversations, "conversations", d.Conversations, "backlog: conversations they are spread over")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", d.DrainTimeout, "give up on the backlog drain after this long")
	fs.BoolVar(&o.InProcess, "inprocess", false, "run the bridge in this process (RSS and CPU then include the fake and the receiver)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the injection schedule (0: from the clock)")
	return o
}

func (o *Options) defaults() error {
	d := Defaults()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&o.PollInterval, d.PollInterval)
	set(&o.LatencyDuration, d.LatencyDuration)
	set(&o.LatencyEvery, d.LatencyEvery)
	set(&o.IdleDuration, d.IdleDuration)
	set(&o.DrainTimeout, d.DrainTimeout)
	if o.Messages <= 0 {
		o.Messages = d.Messages
	}
	if o.Conversations <= 0 {
		o.Conversations = d.Conversations
	}
	if o.Conversations > o.Messages {
		return fmt.Errorf("bench: %d conversations for %d messages: want at least one message each", o.Conversations, o.Messages)
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	if !o.InProcess && len(o.Bridge) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: finding this executable to run the bridge (or use -inprocess): %w", err)
		}
		o.Bridge = []string{exe, "run"}
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Options Options
	Mode    string // "subprocess" or "in-process"
	Machine string
	LoadAvg [2]string // at start and at the end

	Bootstrap Calls // the first start (START_FROM=now)
	Latency   LatencyReport
	Idle      Calls
	Backlog   BacklogReport
	Phases    []PhaseStats
	Baseline  Baseline
	// Receiver counts everything the webhook saw over the whole run.
	Receiver counters
}

// Calls are the Bilibili requests of a window, per endpoint.
type Calls struct {
	Window     time.Duration
	ByEndpoint map[string]int
}

// Total sums every endpoint.
func (c Calls) Total() int {
	n := 0
	for _, v := range c.ByEndpoint {
		n += v
	}
	return n
}

func (c Calls) String() string {
	keys := make([]string, 0, len(c.ByEndpoint))
	for k, v := range c.ByEndpoint {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	slices.SortStableFunc(keys, func(a, b string) int { return c.ByEndpoint[b] - c.ByEndpoint[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c.ByEndpoint[k])
	}
	return strings.Join(parts, ", ")
}

// Dist summarises durations.
type Dist struct {
	N                   int
	P50, P99, Max, Mean time.Duration
}

func dist(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	rank := func(p float64) time.Duration { // nearest rank
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Dist{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1], Mean: sum / time.Duration(len(s))}
}

func (d Dist) String() string {
	r := func(x time.Duration) string { return x.Round(time.Millisecond).String() }
	if d.Max < 10*time.Millisecond {
		r = func(x time.Duration) string { return x.Round(10 * time.Microsecond).String() }
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s  mean %s  (n=%d)", r(d.P50), r(d.P99), r(d.Max), r(d.Mean), d.N)
}

// LatencyReport is phase 1.
type LatencyReport struct {
	Sent, Delivered, Lost int
	// Latency: webhook receipt minus the moment the message was put on
	// the fake. Wait: until the bridge's fetch_session_msgs of that
	// conversation answered. Fetched: from that answer to the receipt.
	// Pipeline: from the last Bilibili answer about the conversation (the
	// fetch, or the cards name lookup after it) to the receipt.
	Latency, Wait, Fetched, Pipeline Dist
	Calls                            Calls
}

// BacklogReport is phase 3.
type BacklogReport struct {
	Messages, Conversations, Delivered, Lost int
	Duplicates, OutOfOrder                   int
	// Drain: from starting the bridge to the last receipt. FirstReceipt:
	// to the first one. LastCall: to the answer of the last
	// fetch_session_msgs.
	Drain, FirstReceipt, LastCall time.Duration
	// Calls are every request until the drain ended; CallsToLastFetch
	// those up to the last fetch_session_msgs.
	Calls            Calls
	CallsToLastFetch int
	// Fetched and Pipeline: per message, as in LatencyReport.
	Fetched, Pipeline Dist
}

// Budget is the client's default request budget (bilibili.Config.Limiter).
const (
	budgetRate  = 2
	budgetBurst = 4
)

// BudgetFloor is the least time n requests take at the budget.
func BudgetFloor(n int) time.Duration {
	return time.Duration(float64(max(n-budgetBurst, 0)) / budgetRate * float64(time.Second))
}

// Problems lists what went wrong: lost messages, disorder, bad signatures.
func (r *Report) Problems() error {
	var errs []error
	if r.Latency.Lost > 0 {
		errs = append(errs, fmt.Errorf("latency phase: %d of %d messages lost", r.Latency.Lost, r.Latency.Sent))
	}
	if r.Backlog.Lost > 0 {
		errs = append(errs, fmt.Errorf("backlog: %d of %d messages not delivered within %s", r.Backlog.Lost, r.Backlog.Messages, r.Options.DrainTimeout))
	}
	c := r.Receiver
	if c.OutOfOrder > 0 || c.BadSignatures > 0 || c.BadBodies > 0 {
		errs = append(errs, fmt.Errorf("webhook: %d out of order, %d bad signatures, %d unexpected bodies (first: %s)", c.OutOfOrder, c.BadSignatures, c.BadBodies, c.Problem))
	}
	return errors.Join(errs...)
}

// endpoints are every path the fake serves, as Calls names them.
var endpoints = []string{
	"nav", "new_sessions", "get_sessions", "session_detail", "single_unread", "my_group_unread",
	"fetch_session_msgs", "update_ack", "send_msg", "cards", "upload_bfs",
	"generate", "poll", "info", "refresh", "correspond",
}

const (
	benchUID      int64  = 425503913
	firstTalker   uint64 = 30_000_001
	benchSESSDATA        = "bench_sessdata%2C1893456000%2Cb1f2c*31"
	benchJct             = "0123456789abcdef0123456789abcdef"
)

// text is a message of ordinary length.
func text(what string, i int) string {
	return bilitest.TextContent(what + " " + strconv.Itoa(i) + ": about as long as an ordinary direct message is, give or take")
}

// run holds what the phases share.
type run struct {
	opts     Options
	fake     *bilitest.Server
	log      *callLog
	recv     *receiver
	settings settings
	logFile  string
	logTo    io.Writer
	rep      *Report
}

func (r *run) progress(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, "# "+format+"\n", args...)
	}
}

func (r *run) calls(window time.Duration) Calls {
	c := Calls{Window: window, ByEndpoint: map[string]int{}}
	for _, ep := range endpoints {
		if n := r.fake.Calls(ep); n > 0 {
			c.ByEndpoint[ep] = n
		}
	}
	return c
}

func (r *run) start(ctx context.Context) (runningBridge, error) {
	if r.opts.InProcess {
		return startInProcess(ctx, r.settings, r.logTo), nil
	}
	return startSubprocess(r.opts.Bridge, r.opts.BridgeEnv, r.settings, r.logTo)
}

// failed adds the end of the bridge's log to err.
func (r *run) failed(err error) error {
	if r.logFile == "" {
		return err
	}
	b, _ := os.ReadFile(r.logFile)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return fmt.Errorf("%w\nthe bridge's log ends with:\n%s", err, strings.Join(lines, "\n"))
}

// Run runs every phase, prints the report to w and returns it. The
// error reports a failure to measure, or lost, disordered or badly
// signed messages (the report is printed first).
func Run(ctx context.Context, opts Options, w io.Writer) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	rep := &Report{Options: opts, Mode: "subprocess"}
	if opts.InProcess {
		rep.Mode = "in-process"
	}
	rep.LoadAvg[0] = loadavg()
	r := &run{opts: opts, rep: rep}

	r.fake = bilitest.New()
	r.log = &callLog{h: r.fake}
	fsrv := httptest.NewServer(r.log)
	defer fsrv.Close()
	r.fake.AddAccount(bilitest.Account{UID: benchUID, Name: "bench", SESSDATA: benchSESSDATA, BiliJct: benchJct})
	old := time.Now().Add(-time.Hour)
	for i := range opts.Conversations {
		uid := firstTalker + uint64(i)
		r.fake.AddUser(bilitest.User{UID: int64(uid), Name: "talker " + strconv.Itoa(i), FollowsAccount: true})
		// One old message each, so every conversation exists (and gets a
		// cursor) at the first start.
		r.fake.Deliver(benchUID, bilitest.Message{SessionType: 1, TalkerID: uid, MsgType: 1, MsgSource: 1,
			Content: text("hello", i), Time: old.Add(time.Duration(i) * time.Millisecond)})
	}
	var err error
	if r.recv, err = newReceiver(); err != nil {
		return nil, err
	}
	defer r.recv.Close()

	tmp, err := os.MkdirTemp("", "bilibridge-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	r.settings = settings{dataDir: filepath.Join(tmp, "data"), fakeURL: fsrv.URL, webhookURL: r.recv.srv.URL,
		secret: r.recv.secret, uid: benchUID, sessdata: benchSESSDATA, jct: benchJct, pollInterval: opts.PollInterval}
	r.logTo = opts.Log
	if r.logTo == nil {
		r.logFile = filepath.Join(tmp, "bridge.log")
		f, err := os.Create(r.logFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r.logTo = f
	}

	if err := r.phases(ctx); err != nil {
		return rep, r.failed(err)
	}
	rep.Receiver = r.recv.counters()
	rep.LoadAvg[1] = loadavg()
	Print(w, rep)
	return rep, rep.Problems()
}

func (r *run) phases(ctx context.Context) error {
	opts, rep := r.opts, r.rep
	rng := rand.New(rand.NewPCG(opts.Seed, 0x62656e6368))
	talkers := opts.Conversations

	// First start: bootstrap (START_FROM=now gives every conversation a
	// cursor at its end), done once the first new_sessions poll happens.
	r.progress("first start: %d conversations to track", talkers)
	r.fake.ResetCalls()
	b, err := r.start(ctx)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = b.stop()
		}
	}()
	ph := startPhase(b.proc(), "first start")
	t0 := time.Now()
	for r.fake.Calls("new_sessions") == 0 {
		select {
		case <-b.exited():
			return errors.New("the bridge exited during its first start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(t0) > 2*time.Minute+2*opts.PollInterval {
			return errors.New("the bridge did not finish its first start within 2 minutes")
		}
	}
	rep.Phases = append(rep.Phases, ph.end())
	rep.Bootstrap = r.calls(time.Since(t0))

	// 1. Latency: messages at random moments.
	r.progress("latency: injecting for %s, a message every %s on average", opts.LatencyDuration, opts.LatencyEvery)
	r.fake.ResetCalls()
	r.log.reset()
	ph = startPhase(b.proc(), "latency")
	injected := map[uint64]time.Time{}
	var keys []uint64
	start := time.Now()
	var next time.Duration // offset of the next message from start
	for i := 0; ; i++ {
		next += time.Duration(rng.ExpFloat64() * float64(opts.LatencyEvery))
		if next > opts.LatencyDuration {
			break
		}
		select {
		case <-time.After(time.Until(start.Add(next))):
		case <-b.exited():
			return errors.New("the bridge exited during the latency phase")
		case <-ctx.Done():
			return ctx.Err()
		}
		talker := firstTalker + uint64(rng.IntN(talkers))
		at := time.Now()
		d := r.fake.Deliver(benchUID, bilitest.Message{SessionType: 1, TalkerID: talker, MsgType: 1, MsgSource: 1, Content: text("latency message", i)})
		injected[d.MsgKey] = at
		keys = append(keys, d.MsgKey)
	}
	select {
	case <-time.After(time.Until(start.Add(opts.LatencyDuration))):
	case <-ctx.Done():
		return ctx.Err()
	}
	lost := r.recv.wait(keys, time.Now().Add(3*opts.PollInterval+30*time.Second), b.exited())
	rep.Phases = append(rep.Phases, ph.end())
	lat := &rep.Latency
	lat.Sent, lat.Lost, lat.Delivered = len(keys), lost, len(keys)-lost
	lat.Calls = r.calls(time.Since(start))
	calls := r.log.snapshot()
	fetches, answers := callTimes(calls, "fetch_session_msgs"), callTimes(calls, "fetch_session_msgs", "cards")
	var all, wait, fetched, pipe []time.Duration
	for k, rc := range r.recv.receipts(keys) {
		all = append(all, rc.at.Sub(injected[k]))
		if f, ok := lastBefore(fetches[rc.conv.talker], rc.at); ok && f.After(injected[k]) {
			wait = append(wait, f.Sub(injected[k]))
			fetched = append(fetched, rc.at.Sub(f))
		}
		if a, ok := lastBefore(answers[rc.conv.talker], rc.at); ok && a.After(injected[k]) {
			pipe = append(pipe, rc.at.Sub(a))
		}
	}
	lat.Latency, lat.Wait, lat.Fetched, lat.Pipeline = dist(all), dist(wait), dist(fetched), dist(pipe)

	// 2. Idle calls.
	r.progress("idle: counting Bilibili calls for %s", opts.IdleDuration)
	r.fake.ResetCalls()
	ph = startPhase(b.proc(), "idle")
	select {
	case <-time.After(opts.IdleDuration):
	case <-b.exited():
		return errors.New("the bridge exited while idle")
	case <-ctx.Done():
		return ctx.Err()
	}
	rep.Idle = r.calls(opts.IdleDuration)
	rep.Phases = append(rep.Phases, ph.end())

	// 3. Backlog: stop, let messages pile up, start again on the same store.
	r.progress("backlog: stopping the bridge, injecting %d messages across %d conversations", opts.Messages, talkers)
	stopped = true
	if err := b.stop(); err != nil {
		return fmt.Errorf("stopping the bridge: %w", err)
	}
	before := r.recv.counters()
	r.recv.setKeepBodies(true)
	keys = keys[:0]
	for i := range opts.Messages {
		talker := firstTalker + uint64(i%talkers)
		d := r.fake.Deliver(benchUID, bilitest.Message{SessionType: 1, TalkerID: talker, MsgType: 1, MsgSource: 1, Content: text("backlog message", i)})
		keys = append(keys, d.MsgKey)
	}
	r.progress("backlog: starting the bridge again on the same DATA_DIR; waiting for all %d (at most %s)", len(keys), opts.DrainTimeout)
	r.fake.ResetCalls()
	r.log.reset()
	t0 = time.Now()
	b, err = r.start(ctx)
	if err != nil {
		return err
	}
	stopped = false
	ph = startPhase(b.proc(), "backlog drain")
	lost = r.recv.wait(keys, t0.Add(opts.DrainTimeout), b.exited())
	st := ph.end()
	bl := &rep.Backlog
	bl.Messages, bl.Conversations, bl.Lost, bl.Delivered = len(keys), talkers, lost, len(keys)-lost
	bl.Calls = r.calls(time.Since(t0))
	got := r.recv.receipts(keys)
	var first, last time.Time
	var msgs []rawMsg
	calls = r.log.snapshot()
	fetches, answers = callTimes(calls, "fetch_session_msgs"), callTimes(calls, "fetch_session_msgs", "cards")
	fetched, pipe = fetched[:0], pipe[:0]
	subjects := events.Subjects{Prefix: "bili"}
	for _, k := range keys {
		rc, ok := got[k]
		if !ok {
			continue
		}
		if first.IsZero() || rc.at.Before(first) {
			first = rc.at
		}
		if rc.at.After(last) {
			last = rc.at
		}
		if f, ok := lastBefore(fetches[rc.conv.talker], rc.at); ok {
			fetched = append(fetched, rc.at.Sub(f))
		}
		if a, ok := lastBefore(answers[rc.conv.talker], rc.at); ok {
			pipe = append(pipe, rc.at.Sub(a))
		}
		msgs = append(msgs, rawMsg{subject: subjects.Message(benchUID, rc.conv.st, rc.conv.talker), id: rc.id, data: rc.body})
	}
	if !first.IsZero() {
		bl.FirstReceipt, bl.Drain = first.Sub(t0), last.Sub(t0)
		st.Wall = bl.Drain // the phase is the drain, not the wait for stragglers
	}
	// The Bilibili side of the drain ends with the last fetch; the polls
	// after it are the idle poller.
	for i, c := range calls {
		if c.endpoint == "fetch_session_msgs" {
			bl.LastCall, bl.CallsToLastFetch = c.done.Sub(t0), i+1
		}
	}
	bl.Fetched, bl.Pipeline = dist(fetched), dist(pipe)
	rep.Phases = append(rep.Phases, st)
	stopped = true
	stopErr := b.stop()
	if lost == 0 && stopErr != nil {
		return fmt.Errorf("stopping the bridge: %w", stopErr)
	}
	after := r.recv.counters().minus(before)
	bl.Duplicates, bl.OutOfOrder = after.Duplicates, after.OutOfOrder
	r.recv.setKeepBodies(false)

	// 5. Baseline: the same payloads through a raw JetStream loop.
	r.progress("baseline: %d events through a raw JetStream publish → consume loop", len(msgs))
	if len(msgs) > 0 {
		if rep.Baseline, err = baseline(context.WithoutCancel(ctx), msgs); err != nil {
			return err
		}
	}
	return nil
}

// callTimes groups the answers of the endpoints' calls by talker, in time order.
func callTimes(calls []call, endpoints ...string) map[uint64][]time.Time {
	out := map[uint64][]time.Time{}
	for _, c := range calls {
		if c.talker != 0 && slices.Contains(endpoints, c.endpoint) {
			out[c.talker] = append(out[c.talker], c.done)
		}
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	}
	return out
}

// lastBefore returns the last of times before t.
func lastBefore(times []time.Time, t time.Time) (time.Time, bool) {
	i, _ := slices.BinarySearchFunc(times, t, func(a, b time.Time) int { return a.Compare(b) })
	if i == 0 {
		return time.Time{}, false
	}
	return times[i-1], true
}
