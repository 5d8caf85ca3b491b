package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
)

var (
	extraSeeds = flag.Int("seeds", 0, "TestRandomFaults: also run this many random seeds, taken from the clock")
	oneSeed    = flag.Uint64("seed", 0, "TestRandomFaults: also run this seed (to replay one that failed)")
)

// fixedSeeds always run, in CI too. A seed that ever failed stays here
// as a regression case, with a comment saying what it found.
var fixedSeeds = []uint64{
	// A paused sink holder wakes with its pull requests still registered
	// at NATS: an event is handed to it, held and handed back 2s later,
	// after the new holder delivered later events of that conversation
	// (one message out of order; 4 runs of 5).
	174890475,
	// A bridge stopped (SIGTERM) or paused while it waits out the
	// previous holder's in-flight events starts consuming anyway when
	// the wait ends; the events it takes come back behind later ones
	// (8 to 261 messages out of order; 3 runs of 4).
	174906313,
	// Out of order across a graceful stop of the sink holder, two
	// SIGKILLs and a pause (1 message; 1 run of 3).
	174898394,
	// Out of order across three pauses, no kill (11 or 12 messages;
	// 3 runs of 3).
	174937989,
}

// The shape of every seed's run. The schedule's moments and parameters
// come from the seed; these bound it so that a seed takes about 50s.
const (
	rfTraffic  = 30 * time.Second // messages, commands and faults are injected for this long
	rfMessages = 300
	rfConvs    = 8
	rfCommands = 20
	// rfLeaseTTL is the bridges' LEASE_TTL (its minimum): a paused or
	// killed holder is replaced within seconds.
	rfLeaseTTL = 3 * time.Second
	// rfBiliTimeout is the bridge's timeout of one Bilibili call (15s,
	// bilibili.Client's default; no setting changes it): a Delay past it
	// is a call that never answers.
	rfBiliTimeout = 15 * time.Second
	// rfSettle bounds the wait, after the last fault, for everything to
	// be delivered and every command to have its result.
	rfSettle = 120 * time.Second
	apiToken = "faults-api-token"
)

// TestRandomFaults runs two bridge processes (`bilibridge run`) on one
// NATS server, for the same account and the same webhook, while
// messages arrive, replies are sent through the HTTP API of either
// bridge, and faults hit Bilibili's endpoints, the webhook endpoint and
// the processes themselves at moments drawn from a seed. Once the faults
// stop it checks the bridge's promise: nothing lost, nothing delivered
// with two bodies, each conversation in order, a duplicate only across a
// SIGKILL of the delivering process, every reply sent exactly once,
// nothing dead-lettered, and each event stored once.
//
// The fixed seeds always run; -seeds N adds N from the clock and -seed N
// replays one:
//
//	go test ./faults -run TestRandomFaults -seeds 20 -v
func TestRandomFaults(t *testing.T) {
	seeds := slices.Clone(fixedSeeds)
	if *oneSeed != 0 {
		seeds = append(seeds, *oneSeed)
	}
	base := uint64(time.Now().UnixNano()/int64(time.Microsecond)) % 1_000_000_000
	for i := range *extraSeeds {
		seeds = append(seeds, base+uint64(i)*7919)
	}
	if len(seeds) > len(fixedSeeds) {
		t.Logf("seeds: %v (replay one with -seed N)", seeds)
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { randomFaults(t, seed) })
	}
}

// --- the schedule ---

// action is one step of a seed's schedule. Each lane runs its actions in
// order in its own goroutine, so that a step that takes a while (a
// graceful stop) delays only its own lane.
type action struct {
	at   time.Duration // after the traffic starts
	lane string
	kind string // the fault kind counted in the report; "" for restores and commands
	desc string
	do   func(rr *rfRun)
}

const (
	laneProc = "proc"
	laneHook = "hook"
	laneBili = "bili"
	laneCmd  = "cmd"
)

// schedule is everything a seed does, derived from the seed alone.
type schedule struct {
	// before runs before the bridges start: get_sessions is called by the
	// first poll only (its bootstrap), so that is when its faults can hit.
	before  []action
	actions []action
	cmds    []*command
}

func (s *schedule) add(a action) { s.actions = append(s.actions, a) }

func (s *schedule) String() string {
	var b strings.Builder
	for _, a := range s.before {
		fmt.Fprintf(&b, "\n  before start  %-4s %s", a.lane, a.desc)
	}
	for _, a := range s.actions {
		fmt.Fprintf(&b, "\n  %+8.2fs     %-4s %s", a.at.Seconds(), a.lane, a.desc)
	}
	return b.String()
}

// between draws a duration in [lo, hi), rounded to 10ms for the log.
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return (lo + time.Duration(rng.Int64N(int64(hi-lo)))).Round(10 * time.Millisecond)
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func newSchedule(seed uint64) *schedule {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &schedule{}
	// Each part draws from the same generator in a fixed order, so the
	// whole schedule follows from the seed.
	s.processFaults(rng)
	s.webhookFaults(rng)
	s.bilibiliFaults(rng)
	s.commands(rng, seed)
	slices.SortStableFunc(s.actions, func(a, b action) int { return int(a.at - b.at) })
	return s
}

// target says which bridge a process fault hits: the one holding the
// sink's lease (delivering), the one holding the account's poller lease
// (polling), or one chosen by the seed. When the lease has no holder at
// that moment, fallback is hit.
type target struct {
	who      string // "sink holder", "poller holder" or "bridge"
	fallback int
}

func (tg target) String() string {
	if tg.who == "bridge" {
		return fmt.Sprintf("bridge %d", tg.fallback)
	}
	return fmt.Sprintf("the %s (else bridge %d)", tg.who, tg.fallback)
}

// processFaults kills, stops or pauses one bridge at a time, each back
// before the next fault, so that one bridge is always there to take
// over.
func (s *schedule) processFaults(rng *rand.Rand) {
	at := between(rng, 3*time.Second, 5*time.Second)
	for n := 0; n < 4 && at < rfTraffic-4*time.Second; n++ {
		tg := target{who: pick(rng, "sink holder", "poller holder", "bridge"), fallback: rng.IntN(2)}
		var took time.Duration
		switch rng.IntN(3) {
		case 0:
			took = between(rng, 300*time.Millisecond, 3*time.Second)
			s.add(action{at: at, lane: laneProc, kind: "proc:sigkill", desc: fmt.Sprintf("SIGKILL %s, restart it %s later", tg, took),
				do: func(rr *rfRun) { rr.sigkill(tg) }})
		case 1:
			took = between(rng, 300*time.Millisecond, 3*time.Second)
			s.add(action{at: at, lane: laneProc, kind: "proc:sigterm", desc: fmt.Sprintf("SIGTERM %s (graceful stop), restart it %s later", tg, took),
				do: func(rr *rfRun) { rr.sigterm(tg) }})
		default:
			// Past the lease TTL: the other bridge takes the leases over
			// meanwhile, and the paused one must not act as their holder
			// when it wakes.
			took = rfLeaseTTL + between(rng, time.Second, 2*time.Second)
			s.add(action{at: at, lane: laneProc, kind: "proc:sigstop", desc: fmt.Sprintf("SIGSTOP %s for %s, then SIGCONT", tg, took),
				do: func(rr *rfRun) { rr.sigstop(tg) }})
		}
		s.add(action{at: at + took, lane: laneProc, desc: "bring that bridge back", do: func(rr *rfRun) { rr.bringBack() }})
		at += took + between(rng, 3*time.Second, 7*time.Second)
	}
}

// webhookFaults opens windows in which the endpoint fails, one at a time.
func (s *schedule) webhookFaults(rng *rand.Rand) {
	at := between(rng, 1500*time.Millisecond, 4*time.Second)
	for at < rfTraffic-4*time.Second {
		d := between(rng, time.Second, 4*time.Second)
		var on, off action
		switch rng.IntN(5) {
		case 0:
			on = action{kind: "hook:503", desc: fmt.Sprintf("endpoint answers 503 for %s", d),
				do: func(rr *rfRun) { rr.r.failWith(http.StatusServiceUnavailable, "") }}
			off = action{do: func(rr *rfRun) { rr.r.failWith(0, "") }}
		case 1:
			ra := pick(rng, "1", "2")
			on = action{kind: "hook:503-retry-after", desc: fmt.Sprintf("endpoint answers 503 Retry-After: %s for %s", ra, d),
				do: func(rr *rfRun) { rr.r.failWith(http.StatusServiceUnavailable, ra) }}
			off = action{do: func(rr *rfRun) { rr.r.failWith(0, "") }}
		case 2:
			on = action{kind: "hook:refused", desc: fmt.Sprintf("endpoint refuses connections for %s", d),
				do: func(rr *rfRun) { rr.r.down() }}
			off = action{do: func(rr *rfRun) { rr.r.up() }}
		case 3:
			on = action{kind: "hook:hang-up", desc: fmt.Sprintf("endpoint closes each connection without an answer for %s", d),
				do: func(rr *rfRun) { rr.r.hangUpOn(true) }}
			off = action{do: func(rr *rfRun) { rr.r.hangUpOn(false) }}
		default:
			// Well below the webhook timeout (15s) and the shutdown
			// grace (5s): slow, not failing.
			slow := between(rng, 200*time.Millisecond, 1500*time.Millisecond)
			d += 2 * time.Second
			on = action{kind: "hook:slow", desc: fmt.Sprintf("endpoint answers %s late for %s", slow, d),
				do: func(rr *rfRun) { rr.r.slowBy(slow) }}
			off = action{do: func(rr *rfRun) { rr.r.slowBy(0) }}
		}
		on.at, on.lane = at, laneHook
		off.at, off.lane, off.desc = at+d, laneHook, "endpoint answers normally again"
		s.add(on)
		s.add(off)
		at += d + between(rng, 2*time.Second, 6*time.Second)
	}
}

// biliFault is one way for a Bilibili call to fail.
type biliFault struct {
	kind string
	desc string
	f    bilitest.Fault
}

// biliFaultKinds are the failures every endpoint can answer with. None
// is a refusal (21046, 21047, 25003, -101...): those end a command or
// pause polling by design, and the invariants below assume neither.
var biliFaultKinds = []func(rng *rand.Rand) biliFault{
	func(rng *rand.Rand) biliFault {
		c := pick(rng, -352, -412, -799)
		return biliFault{"bili:risk-control", fmt.Sprintf("code %d", c), bilitest.Fault{Code: c}}
	},
	func(rng *rand.Rand) biliFault {
		return biliFault{"bili:rate-limit", "code -509", bilitest.Fault{Code: -509}}
	},
	func(rng *rand.Rand) biliFault {
		c := pick(rng, -500, -503, -504, -3)
		return biliFault{"bili:busy", fmt.Sprintf("code %d", c), bilitest.Fault{Code: c}}
	},
	func(rng *rand.Rand) biliFault {
		// Codes nobody documented: every known negative code is above
		// -1000, and no known positive one lies in 30000-39999.
		c := -(1000 + rng.IntN(99000))
		if rng.IntN(2) == 0 {
			c = 30000 + rng.IntN(10000)
		}
		return biliFault{"bili:unknown-code", fmt.Sprintf("code %d (never seen)", c), bilitest.Fault{Code: c}}
	},
	func(rng *rand.Rand) biliFault {
		st := pick(rng, 500, 502, 503, 504)
		return biliFault{"bili:http-5xx", fmt.Sprintf("HTTP %d", st), bilitest.Fault{Status: st}}
	},
	func(rng *rand.Rand) biliFault {
		body := pick(rng, `{"code":0,"message":"0","data":{"session_list":[`, `<html><body>upstream error</body></html>`, `{"code":0,"data":`)
		return biliFault{"bili:malformed", fmt.Sprintf("malformed body %q", body), bilitest.Fault{Body: body}}
	},
}

// timeoutFault holds the answer back past the client's timeout.
func timeoutFault(rng *rand.Rand) biliFault {
	d := rfBiliTimeout + between(rng, time.Second, 3*time.Second)
	return biliFault{"bili:timeout", fmt.Sprintf("no answer for %s (past the %s timeout)", d, rfBiliTimeout), bilitest.Fault{Delay: d}}
}

// sendOnlyFaults are send_msg's own: 21020, and sends that happened on
// Bilibili's side although the bridge heard a failure.
var sendOnlyFaults = []func(rng *rand.Rand) biliFault{
	func(rng *rand.Rand) biliFault {
		return biliFault{"bili:rate-limit", "code 21020 (sending too fast)", bilitest.Fault{Code: 21020}}
	},
	func(rng *rand.Rand) biliFault {
		if rng.IntN(2) == 0 {
			return biliFault{"bili:applied-then-error", "sent, but answered code -500", bilitest.Fault{Code: -500, Apply: true}}
		}
		return biliFault{"bili:applied-then-error", "sent, but answered HTTP 502", bilitest.Fault{Status: 502, Apply: true}}
	},
}

func appliedTimeoutFault(rng *rand.Rand) biliFault {
	d := rfBiliTimeout + between(rng, time.Second, 3*time.Second)
	return biliFault{"bili:applied-then-timeout", fmt.Sprintf("sent, but the answer held back %s (past the timeout)", d),
		bilitest.Fault{Delay: d, Apply: true}}
}

// bilibiliFaults queues failures on the polling endpoints and on
// send_msg at random moments. Each hits the next call(s) of its
// endpoint, whichever bridge makes it.
func (s *schedule) bilibiliFaults(rng *rand.Rand) {
	// A call that never answers stalls its caller for the whole
	// timeout: at most two per seed, or the run is mostly waiting.
	timeouts, sends := 0, 0
	draw := func(ep string) biliFault {
		if ep == "send_msg" && rng.IntN(5) < 2 {
			if timeouts < 2 && rng.IntN(3) == 0 {
				timeouts++
				return appliedTimeoutFault(rng)
			}
			return pick(rng, sendOnlyFaults...)(rng)
		}
		if ep != "get_sessions" && timeouts < 2 && rng.IntN(9) == 0 {
			timeouts++
			return timeoutFault(rng)
		}
		return pick(rng, biliFaultKinds...)(rng)
	}
	for range 1 + rng.IntN(2) {
		bf := draw("get_sessions")
		s.before = append(s.before, action{lane: laneBili, kind: bf.kind, desc: "get_sessions ×1 (the bootstrap): " + bf.desc,
			do: func(rr *rfRun) { rr.failBili("get_sessions", 1, bf) }})
	}
	for range 10 + rng.IntN(5) {
		at := between(rng, 500*time.Millisecond, rfTraffic-6*time.Second)
		ep := pick(rng, "new_sessions", "fetch_session_msgs", "send_msg")
		if ep == "send_msg" && sends == 4 {
			// More would leave commands waiting out the sender's retry
			// schedule (5s, 15s, 30s...) well past the run.
			ep = "fetch_session_msgs"
		}
		if ep == "send_msg" {
			sends++
		}
		bf := draw(ep)
		calls := 1
		if ep != "send_msg" && bf.f.Delay == 0 {
			calls = 1 + rng.IntN(2)
		}
		s.add(action{at: at, lane: laneBili, kind: bf.kind, desc: fmt.Sprintf("%s ×%d: %s", ep, calls, bf.desc),
			do: func(rr *rfRun) { rr.failBili(ep, calls, bf) }})
	}
}

// command is one reply sent through the HTTP API.
type command struct {
	i      int
	key    string // idempotency_key = command_id
	text   string // unique, so that its sends can be counted on the fake
	peer   int64
	bridge int  // the bridge asked first
	wait   bool // ?wait=true

	// What the API answered, written by its submit goroutine under
	// rfRun.mu.
	accepted bool
	tries    []string
}

func (s *schedule) commands(rng *rand.Rand, seed uint64) {
	for i := range rfCommands {
		c := &command{i: i, key: fmt.Sprintf("rf-%d-%02d", seed, i), text: fmt.Sprintf("reply %02d of seed %d", i, seed),
			peer: firstPeer + int64(rng.IntN(rfConvs)), bridge: rng.IntN(2), wait: rng.IntN(3) == 0}
		at := between(rng, time.Second, rfTraffic-3*time.Second)
		how := ""
		if c.wait {
			how = " ?wait=true"
		}
		s.cmds = append(s.cmds, c)
		s.add(action{at: at, lane: laneCmd, desc: fmt.Sprintf("command %s to peer %d via bridge %d%s", c.key, c.peer, c.bridge, how),
			do: func(rr *rfRun) { rr.submitAsync(c) }})
	}
}

// --- one seed's run ---

// rfRun is one seed's world: the fake, the webhook receiver, NATS and
// the two bridge processes, and what happened to them.
type rfRun struct {
	t       *testing.T
	seed    uint64
	w       *world
	r       *receiver
	procs   [2]*proc
	addrs   [2]string // HTTP_ADDR of each bridge
	js      jetstream.JetStream
	sinkKey string
	cmds    []*command
	client  http.Client
	traffic time.Time // when the traffic started: the schedule's zero
	tap     *jsTap    // the sink consumer's traffic, to explain a failure

	mu      sync.Mutex
	down    [2]bool // killed or stopped, not restarted yet
	paused  [2]bool
	victim  int // the bridge the last process fault hit
	kills   []killed
	counts  map[string]int
	hits    []queuedFault
	queued  map[string]int          // endpoint → calls up to which faults are queued
	results map[string]events.Event // send results seen on NATS, by event id
	cmdWG   sync.WaitGroup
}

// killed is a SIGKILL: when, which bridge, and whether it held the
// sink's lease then (unknown when the lease could not be read).
type killed struct {
	at         time.Time
	bridge     int
	sinkHolder bool
	known      bool
}

// queuedFault is a Bilibili fault queued on an endpoint: faults queue up
// per endpoint, each taking calls first..first+n-1 of it.
type queuedFault struct {
	endpoint string
	first, n int
}

func randomFaults(t *testing.T, seed uint64) {
	sched := newSchedule(seed)
	t.Logf("seed %d: schedule (%d actions before start, %d after):%s", seed, len(sched.before), len(sched.actions), sched)
	start := time.Now()

	w := newWorld(t, rfConvs)
	r := newReceiver(t)
	ns := bustest.StartServer(t)
	c := ns.Connect(t)
	rr := &rfRun{t: t, seed: seed, w: w, r: r, js: c.JS, sinkKey: sinkLeaseKey(t, r), cmds: sched.cmds,
		counts: map[string]int{}, queued: map[string]int{}, results: map[string]events.Event{}}
	rr.tap = newJSTap(t, c.NC, "sink_")
	// Send results are collected as they are published, so that the
	// wait below knows when every command has one.
	sub, err := c.NC.Subscribe(fmt.Sprintf("%s.%d.sent.>", events.DefaultPrefix, accountUID), func(m *nats.Msg) {
		if ev, err := events.Parse(m.Data); err == nil {
			rr.mu.Lock()
			rr.results[ev.ID] = ev
			rr.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	logDir := t.TempDir()
	for i := range rr.procs {
		rr.addrs[i] = freeAddr(t)
		env := append(bridgeEnv(w, r, ns.URL, t.TempDir()),
			"HTTP_ADDR="+rr.addrs[i], "API_TOKEN="+apiToken, "LEASE_TTL="+rfLeaseTTL.String(),
			// Debug logs name every webhook delivery ("webhook: delivered"),
			// so a failing seed's logs show which bridge posted what, when.
			"LOG_LEVEL=debug")
		rr.procs[i] = &proc{t: t, env: env, log: filepath.Join(logDir, fmt.Sprintf("bridge%d.log", i))}
		dumpOnFailure(t, fmt.Sprintf("bridge %d", i), rr.procs[i])
	}
	t.Cleanup(rr.keepLogsOnFailure)
	// Cleanups run last-registered first: the bridges stop before NATS
	// and the fake do.
	t.Cleanup(func() {
		for i, p := range rr.procs {
			_ = p.signal(syscall.SIGCONT) // a paused process cannot stop
			if !p.stopGracefully(20 * time.Second) {
				t.Errorf("bridge %d did not stop within 20s of SIGTERM at the end", i)
			}
		}
	})

	for _, a := range sched.before {
		rr.count(a.kind)
		a.do(rr)
	}
	for _, p := range rr.procs {
		p.start()
	}
	rr.waitRunning(30 * time.Second)
	waitPolling(t, w, 30*time.Second)
	t.Logf("both bridges running, the first poll made (%s)", time.Since(start).Round(10*time.Millisecond))

	// Traffic: messages on their own goroutine, each lane on its own.
	trafficStart := time.Now()
	rr.traffic = trafficStart
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lanes sync.WaitGroup
	lanes.Go(func() { w.sendOver(ctx, rfMessages, rfTraffic, seed) })
	for _, lane := range []string{laneProc, laneHook, laneBili, laneCmd} {
		lanes.Go(func() {
			for _, a := range sched.actions {
				if a.lane != lane {
					continue
				}
				time.Sleep(time.Until(trafficStart.Add(a.at)))
				rr.count(a.kind)
				a.do(rr)
			}
		})
	}
	lanes.Wait()
	t.Logf("faults over at +%s (%d messages, %d delivered)", time.Since(trafficStart).Round(10*time.Millisecond), w.sentCount(), r.delivered(w))

	// Stop injecting: pending Bilibili faults go, the endpoint answers.
	faultedHit, faultedAll := rr.faultedCalls()
	w.fake.ClearFaults()
	r.failWith(0, "")
	r.hangUpOn(false)
	r.slowBy(0)
	settleStart := time.Now()
	ok, missing := rr.waitSettled(rfSettle)
	t.Logf("settled in %s after the faults", time.Since(settleStart).Round(10*time.Millisecond))
	if !ok {
		t.Errorf("seed %d: not settled within %s after the faults: %s", seed, rfSettle, missing)
	}
	rr.check(faultedHit, faultedAll, start)
}

// logf logs what happened, with the wall clock of the bridges' logs and
// the offset into the schedule.
func (rr *rfRun) logf(format string, args ...any) {
	rr.t.Helper()
	rr.t.Logf("%s  %s", rr.clock(time.Now()), fmt.Sprintf(format, args...))
}

func (rr *rfRun) count(kind string) {
	if kind == "" {
		return
	}
	rr.mu.Lock()
	rr.counts[kind]++
	rr.mu.Unlock()
}

// waitRunning waits until both bridges say they run (HTTP API included).
func (rr *rfRun) waitRunning(d time.Duration) {
	rr.t.Helper()
	end := time.Now().Add(d)
	for i, p := range rr.procs {
		for len(p.grep("bridge running")) == 0 {
			if time.Now().After(end) {
				rr.t.Fatalf("bridge %d did not start within %s", i, d)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// --- process faults ---

// holder returns the bridge holding lease key, found by the holder id
// the bridge logged when it acquired it.
func (rr *rfRun) holder(key string) (int, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	kv, err := rr.js.KeyValue(ctx, "bili_leases")
	if err != nil {
		return 0, false
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, false
	}
	needle := "holder=" + string(e.Value())
	for i, p := range rr.procs {
		if strings.Contains(p.String(), needle) {
			return i, true
		}
	}
	return 0, false
}

func (rr *rfRun) resolve(tg target) (int, string) {
	key := ""
	switch tg.who {
	case "sink holder":
		key = rr.sinkKey
	case "poller holder":
		key = strconv.FormatInt(accountUID, 10)
	default:
		return tg.fallback, "chosen by the seed"
	}
	if i, ok := rr.holder(key); ok {
		return i, "holds lease " + key
	}
	return tg.fallback, "nobody holds lease " + key + "; the fallback"
}

func (rr *rfRun) sigkill(tg target) {
	i, why := rr.resolve(tg)
	holderOfSink, known := rr.holder(rr.sinkKey)
	k := killed{at: time.Now(), bridge: i, sinkHolder: known && holderOfSink == i, known: known}
	rr.procs[i].kill()
	rr.mu.Lock()
	rr.down[i], rr.victim = true, i
	rr.kills = append(rr.kills, k)
	rr.mu.Unlock()
	rr.logf("SIGKILL bridge %d (%s; held the sink lease: %v)", i, why, k.sinkHolder)
}

func (rr *rfRun) sigterm(tg target) {
	i, why := rr.resolve(tg)
	rr.mu.Lock()
	rr.down[i], rr.victim = true, i
	rr.mu.Unlock()
	at := time.Now()
	if !rr.procs[i].stopGracefully(20 * time.Second) {
		// It was SIGKILLed in the end: a duplicate across it is allowed.
		rr.mu.Lock()
		rr.kills = append(rr.kills, killed{at: time.Now(), bridge: i})
		rr.mu.Unlock()
		rr.t.Errorf("seed %d: bridge %d did not stop within 20s of SIGTERM (%s)", rr.seed, i, why)
	}
	rr.logf("SIGTERM bridge %d (%s): stopped in %s", i, why, time.Since(at).Round(time.Millisecond))
}

func (rr *rfRun) sigstop(tg target) {
	i, why := rr.resolve(tg)
	if err := rr.procs[i].signal(syscall.SIGSTOP); err != nil {
		rr.t.Errorf("SIGSTOP bridge %d: %v", i, err)
	}
	rr.mu.Lock()
	rr.paused[i], rr.victim = true, i
	rr.mu.Unlock()
	rr.logf("SIGSTOP bridge %d (%s)", i, why)
}

// bringBack restarts or wakes the bridge the last process fault hit.
func (rr *rfRun) bringBack() {
	rr.mu.Lock()
	i := rr.victim
	wasDown, wasPaused := rr.down[i], rr.paused[i]
	rr.down[i], rr.paused[i] = false, false
	rr.mu.Unlock()
	switch {
	case wasPaused:
		if err := rr.procs[i].signal(syscall.SIGCONT); err != nil {
			rr.t.Errorf("SIGCONT bridge %d: %v", i, err)
		}
		rr.logf("SIGCONT bridge %d", i)
	case wasDown:
		if err := rr.procs[i].tryStart(); err != nil {
			rr.t.Errorf("restarting bridge %d: %v", i, err)
		}
		rr.logf("restarted bridge %d", i)
	}
}

func (rr *rfRun) isDown(i int) bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.down[i]
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return errors.New("not running")
	}
	return p.cmd.Process.Signal(sig)
}

// stopGracefully sends SIGTERM and waits up to grace for the process to
// exit; it SIGKILLs it after that and reports false.
func (p *proc) stopGracefully(grace time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return true
	}
	cmd := p.cmd
	p.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

// --- Bilibili faults ---

func (rr *rfRun) failBili(ep string, n int, bf biliFault) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	first := max(rr.w.fake.Calls(ep), rr.queued[ep])
	rr.queued[ep] = first + n
	rr.hits = append(rr.hits, queuedFault{endpoint: ep, first: first, n: n})
	rr.w.fake.Fail(ep, n, bf.f)
}

// faultedCalls counts the calls that met a queued fault (the rest are
// cleared unhit when the faults stop). A call racing the queuing can
// make it off by one.
func (rr *rfRun) faultedCalls() (hit, queued int) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for _, q := range rr.hits {
		hit += min(max(rr.w.fake.Calls(q.endpoint)-q.first, 0), q.n)
		queued += q.n
	}
	return hit, queued
}

// --- commands through the HTTP API ---

func (rr *rfRun) submitAsync(c *command) {
	rr.cmdWG.Add(1)
	go func() {
		defer rr.cmdWG.Done()
		rr.submit(c)
	}()
}

// submit posts the command to a bridge that is up (the one the schedule
// names, unless it is down) and, like a client would, posts it again
// with the same idempotency key to the other bridge when the request
// fails: no answer (the process died or is paused) or 503.
func (rr *rfRun) submit(c *command) {
	b := c.bridge
	if rr.isDown(b) {
		b = 1 - b
	}
	note := func(accepted bool, what string) {
		rr.mu.Lock()
		c.accepted = c.accepted || accepted
		c.tries = append(c.tries, fmt.Sprintf("bridge %d: %s", b, what))
		rr.mu.Unlock()
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		status, err := rr.post(b, c)
		switch {
		case err == nil && (status == http.StatusAccepted || status == http.StatusOK):
			note(true, strconv.Itoa(status))
			return
		case err == nil && status != http.StatusServiceUnavailable:
			// The bridge refused or failed the command: retrying the same
			// request cannot help, and the checks will say so.
			note(false, strconv.Itoa(status))
			return
		case err != nil:
			note(false, err.Error())
		default:
			note(false, strconv.Itoa(status))
		}
		if time.Now().After(deadline) {
			return
		}
		b = 1 - b
		time.Sleep(300 * time.Millisecond)
	}
}

func (rr *rfRun) post(b int, c *command) (int, error) {
	body, err := json.Marshal(map[string]any{"session_type": 1, "talker_id": strconv.FormatInt(c.peer, 10),
		"text": c.text, "idempotency_key": c.key})
	if err != nil {
		return 0, err
	}
	url := "http://" + rr.addrs[b] + "/api/v1/messages"
	// A paused bridge accepts the connection and says nothing: give up
	// on it like a client with a timeout would.
	timeout := 5 * time.Second
	if c.wait {
		url += "?wait=true"
		timeout = 40 * time.Second // the API waits up to 30s
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := rr.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// --- settling and the checks ---

// replies returns the messages the bridge sent, by event id: they come
// back from Bilibili as messages of their conversation (direction out)
// and must reach the webhook too.
func (rr *rfRun) replies() map[string]bilitest.Sent {
	out := map[string]bilitest.Sent{}
	for _, s := range rr.w.fake.Sent(accountUID) {
		out[events.MessageID(accountUID, s.MsgKey)] = s
	}
	return out
}

// waitSettled waits until every command was answered and has a result,
// and every message and reply reached the webhook; else it says what is
// missing when d is up.
func (rr *rfRun) waitSettled(d time.Duration) (bool, string) {
	answered := make(chan struct{})
	go func() { rr.cmdWG.Wait(); close(answered) }()
	end := time.Now().Add(d)
	for {
		missing := rr.missing(answered)
		if missing == "" {
			return true, ""
		}
		if time.Now().After(end) {
			return false, missing
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (rr *rfRun) missing(answered chan struct{}) string {
	var out []string
	select {
	case <-answered:
	default:
		out = append(out, "commands still being submitted")
	}
	if n, all := rr.r.delivered(rr.w), rr.w.sentCount(); n < all {
		out = append(out, fmt.Sprintf("%d of %d messages delivered", n, all))
	}
	rr.mu.Lock()
	noResult := 0
	for _, c := range rr.cmds {
		if _, ok := rr.results[events.SendResultID(accountUID, c.key)]; !ok {
			noResult++
		}
	}
	rr.mu.Unlock()
	if noResult > 0 {
		out = append(out, fmt.Sprintf("%d commands without a result", noResult))
	}
	rr.r.mu.Lock()
	undelivered := 0
	for id := range rr.replies() {
		if rr.r.count[id] == 0 {
			undelivered++
		}
	}
	rr.r.mu.Unlock()
	if undelivered > 0 {
		out = append(out, fmt.Sprintf("%d replies not delivered", undelivered))
	}
	return strings.Join(out, ", ")
}

// rfReport is one seed's REPORT line.
type rfReport struct {
	Seed        uint64
	Faults      map[string]int
	FaultedHit  int
	FaultedAll  int
	Messages    int
	Commands    int
	Succeeded   int
	Replies     int
	Delivered   int
	Lost        int
	Duplicated  int // extra arrivals of an id already delivered
	DupIDs      int
	AcrossKill  int // extra arrivals with a SIGKILL of the delivering bridge between them
	DiffBody    int
	Reordered   int
	Unexpected  int
	DeadLetters int
	StreamDups  int // event ids stored more than once on BILI
	SendsMax    int // most sends to Bilibili of one command
	Took        time.Duration
}

func (rp rfReport) String() string {
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(rp.Faults)) {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, rp.Faults[k]))
	}
	return fmt.Sprintf("REPORT random seed=%d: faults: %s (Bilibili calls faulted: %d of %d queued) | messages=%d commands=%d (succeeded=%d) replies=%d delivered=%d lost=%d duplicated=%d (ids=%d, across a SIGKILL=%d, different body=%d) reordered=%d unexpected=%d dead-letters=%d stream-duplicates=%d sends-per-command-max=%d took=%s",
		rp.Seed, strings.Join(kinds, " "), rp.FaultedHit, rp.FaultedAll, rp.Messages, rp.Commands, rp.Succeeded, rp.Replies,
		rp.Delivered, rp.Lost, rp.Duplicated, rp.DupIDs, rp.AcrossKill, rp.DiffBody, rp.Reordered, rp.Unexpected,
		rp.DeadLetters, rp.StreamDups, rp.SendsMax, rp.Took.Round(100*time.Millisecond))
}

// check reads what came out and asserts the invariants; it logs the
// seed's REPORT line (and appends it to $FAULTS_REPORT when set).
func (rr *rfRun) check(faultedHit, faultedAll int, start time.Time) {
	t := rr.t
	t.Helper()
	// A duplicate still on its way is counted too.
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rr.js.Stream(ctx, "BILI")
	if err != nil {
		t.Fatalf("stream BILI: %v", err)
	}
	stored := bustest.StreamEvents(t, stream)
	// Stream sequences, to read the tap by: BILI loses nothing in a run
	// this short, so the n-th message is sequence first+n.
	firstSeq := uint64(0)
	if info, err := stream.Info(ctx); err == nil && info.State.LastSeq-info.State.FirstSeq+1 == uint64(len(stored)) {
		firstSeq = info.State.FirstSeq
	}
	replies := rr.replies()

	rr.mu.Lock()
	rp := rfReport{Seed: rr.seed, Faults: maps.Clone(rr.counts), FaultedHit: faultedHit, FaultedAll: faultedAll,
		Commands: len(rr.cmds), Replies: len(replies)}
	kills := slices.Clone(rr.kills)
	accepted := map[*command]bool{}
	tries := map[*command][]string{}
	for _, c := range rr.cmds {
		accepted[c], tries[c] = c.accepted, slices.Clone(c.tries)
	}
	rr.mu.Unlock()
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// 6 and 7: the stream holds each event once, and no dead letter.
	perID := map[string]int{}
	results := map[string]events.Event{}
	var dead []string
	for _, m := range stored {
		perID[m.Event.ID]++
		if m.MsgID != m.Event.ID {
			fail("stream message %s has Nats-Msg-Id %q", m.Event.ID, m.MsgID)
		}
		switch m.Event.Type {
		case events.TypeDeadLetter:
			dead = append(dead, fmt.Sprintf("%s %s", m.Event.ID, m.Event.Data))
		case events.TypeSendSucceeded, events.TypeSendFailed:
			results[m.Event.ID] = m.Event
		}
	}
	var streamDups []string
	for id, n := range perID {
		if n > 1 {
			streamDups = append(streamDups, fmt.Sprintf("%s ×%d", id, n))
		}
	}
	slices.Sort(streamDups)
	rp.DeadLetters, rp.StreamDups = len(dead), len(streamDups)
	if len(dead) > 0 {
		fail("%d events dead-lettered, though no fault was permanent: %v", len(dead), dead[:min(3, len(dead))])
	}
	if len(streamDups) > 0 {
		fail("%d event ids stored more than once on stream BILI: %v", len(streamDups), streamDups[:min(5, len(streamDups))])
	}

	// 5: each command sent to Bilibili exactly once, and succeeded.
	sentByText := map[string][]bilitest.Sent{}
	for _, s := range replies {
		var tc struct {
			Content string `json:"content"`
		}
		_ = json.Unmarshal([]byte(s.Content), &tc)
		sentByText[tc.Content] = append(sentByText[tc.Content], s)
	}
	texts := map[string]bool{}
	for _, c := range rr.cmds {
		texts[c.text] = true
		sends := sentByText[c.text]
		rp.SendsMax = max(rp.SendsMax, len(sends))
		if len(sends) != 1 {
			fail("command %s was sent to Bilibili %d times (want exactly once); its API requests: %v", c.key, len(sends), tries[c])
		}
		if !accepted[c] {
			fail("command %s was never accepted by the API: %v", c.key, tries[c])
		}
		ev, ok := results[events.SendResultID(accountUID, c.key)]
		if !ok {
			fail("command %s has no result event on stream BILI; its API requests: %v", c.key, tries[c])
			continue
		}
		if ev.Type != events.TypeSendSucceeded {
			fail("command %s ended %s: %s", c.key, ev.Type, ev.Data)
			continue
		}
		rp.Succeeded++
		var res events.SendResultData
		if err := ev.DecodeData(&res); err != nil {
			fail("command %s: result: %v", c.key, err)
		} else if len(sends) == 1 && res.MsgKey != sends[0].MsgKey {
			fail("command %s: the result says msg_key %d, Bilibili stored it as %d", c.key, res.MsgKey, sends[0].MsgKey)
		}
	}
	for text, sends := range sentByText {
		if !texts[text] {
			fail("%d messages %q sent that no command asked for", len(sends), text)
		}
	}

	// 1-4: the webhook.
	rr.w.mu.Lock()
	rr.r.mu.Lock()
	expected := map[string]bool{}
	for id := range rr.w.sent {
		expected[id] = true
	}
	rp.Messages = len(rr.w.sent)
	for id := range replies {
		expected[id] = true
	}
	var lost, unexpected, unexplained []string
	for id := range expected {
		if rr.r.count[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range rr.r.count {
		if !expected[id] {
			unexpected = append(unexpected, id)
			continue
		}
		rp.Delivered++
		if n < 2 {
			continue
		}
		rp.DupIDs++
		rp.Duplicated += n - 1
		at := rr.r.okAt[id]
		for i := 1; i < len(at); i++ {
			if k, ok := killBetween(kills, at[i-1], at[i]); ok {
				rp.AcrossKill++
				t.Logf("duplicate %s: at +%s and +%s, bridge %d SIGKILLed at +%s between them", id,
					at[i-1].Sub(start).Round(time.Millisecond), at[i].Sub(start).Round(time.Millisecond), k.bridge, k.at.Sub(start).Round(time.Millisecond))
				continue
			}
			unexplained = append(unexplained, fmt.Sprintf("%s at +%s and +%s", id,
				at[i-1].Sub(start).Round(time.Millisecond), at[i].Sub(start).Round(time.Millisecond)))
		}
	}
	rp.Lost, rp.Unexpected = len(lost), len(unexpected)
	rp.DiffBody, rp.Reordered = len(rr.r.diffBody), len(rr.r.disorder)
	disorder, diffBody := slices.Clone(rr.r.disorder), slices.Clone(rr.r.diffBody)
	rr.explainDisorder(stored, firstSeq)
	rr.r.mu.Unlock()
	rr.w.mu.Unlock()
	if len(lost) > 0 {
		slices.Sort(lost)
		fail("%d messages never reached the webhook, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if len(diffBody) > 0 {
		fail("%d webhook-ids arrived with two different bodies: %v", len(diffBody), diffBody[:min(5, len(diffBody))])
	}
	if len(disorder) > 0 {
		fail("%d messages delivered after a later one of their conversation: %v", len(disorder), disorder[:min(5, len(disorder))])
	}
	if len(unexplained) > 0 {
		fail("%d duplicate deliveries without a SIGKILL of the delivering bridge between them (a graceful stop, a hand-over or a pause delivered twice): %v",
			len(unexplained), unexplained[:min(5, len(unexplained))])
	}
	if len(unexpected) > 0 {
		fail("%d webhook-ids that are neither an injected message nor a reply: %v", len(unexpected), unexpected[:min(5, len(unexpected))])
	}

	rp.Took = time.Since(start)
	t.Log(rp.String())
	if f := os.Getenv("FAULTS_REPORT"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, rp.String())
			fh.Close()
		}
	}
	for _, p := range problems {
		t.Errorf("seed %d: %s", rr.seed, p)
	}
}

// killBetween finds a SIGKILL between two arrivals of one event of a
// bridge that held the sink's lease then (or of one whose lease could
// not be read): at-least-once delivery repeats what such a bridge posted
// but could not ack.
func killBetween(kills []killed, first, second time.Time) (killed, bool) {
	for _, k := range kills {
		if (k.sinkHolder || !k.known) && k.at.After(first) && k.at.Before(second) {
			return k, true
		}
	}
	return killed{}, false
}

// keepLogsOnFailure copies the bridges' logs where they outlive the
// test, so that a failing seed can be studied.
func (rr *rfRun) keepLogsOnFailure() {
	if !rr.t.Failed() {
		return
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("bilibridge-random-seed-%d-%s", rr.seed, time.Now().Format("150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		rr.t.Logf("keeping the logs: %v", err)
		return
	}
	for i, p := range rr.procs {
		dst := filepath.Join(dir, fmt.Sprintf("bridge%d.log", i))
		if err := os.WriteFile(dst, []byte(p.String()), 0o644); err != nil {
			rr.t.Logf("keeping the logs: %v", err)
			return
		}
	}
	rr.t.Logf("seed %d failed: the bridges' logs are kept in %s", rr.seed, dir)
}

// clock renders t as the bridges' logs do (UTC), with its offset from
// the start of the traffic, so that the two can be matched.
func (rr *rfRun) clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%+.2fs)", t.UTC().Format("15:04:05.000"), t.Sub(rr.traffic).Seconds())
}

// explainDisorder logs, for each message delivered after a later one of
// its conversation, where both stand on stream BILI and when the webhook
// saw them: a stream out of order points at the poller, a stream in
// order at the delivery. Called with rr.r.mu held.
func (rr *rfRun) explainDisorder(stored []bustest.Msg, firstSeq uint64) {
	if len(rr.r.disorderAt) == 0 {
		return
	}
	pos := map[string]int{}
	for i, m := range stored {
		if _, ok := pos[m.Event.ID]; !ok {
			pos[m.Event.ID] = i
		}
	}
	describe := func(id string) string {
		var d events.MessageData
		if i, ok := pos[id]; ok {
			_ = stored[i].Event.DecodeData(&d)
		}
		reqs := rr.r.attempts[id]
		first := time.Time{}
		if len(reqs) > 0 {
			first = reqs[0].at
		}
		return fmt.Sprintf("%s (seqno %d, %s %q, stream position %d; webhook requests %d, first at %s, delivered at %s)",
			id, d.Message.Seqno, d.Message.Direction, d.Message.Text, pos[id], len(reqs), rr.clock(first), rr.clock(rr.r.arrived[id]))
	}
	for i, p := range rr.r.disorderAt {
		if i == 10 {
			rr.t.Logf("… and %d more out of order", len(rr.r.disorderAt)-i)
			break
		}
		history := func(id string) string {
			i, ok := pos[id]
			if !ok || firstSeq == 0 {
				return "      (its stream sequence is not known)"
			}
			return rr.tap.history(firstSeq+uint64(i), rr.clock)
		}
		rr.t.Logf("out of order: %s\n%s\n    came after %s\n%s", describe(p[0]), history(p[0]), describe(p[1]), history(p[1]))
	}
}
