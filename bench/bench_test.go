package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/config"
)

// childEnv makes the test binary act as `bilibridge run`: the subprocess
// the bench starts in TestBenchSubprocess.
const childEnv = "BILIBRIDGE_BENCH_TEST_BRIDGE"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := runBridge(); err != nil {
			fmt.Fprintln(os.Stderr, "bridge:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runBridge is what `bilibridge run` does.
func runBridge() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	logins, err := cfg.Logins()
	if err != nil {
		return err
	}
	return bridge.Run(ctx, bridge.Options{Config: cfg, Accounts: logins, Logger: cfg.Logger(os.Stderr)})
}

func tiny() Options {
	return Options{
		PollInterval: time.Second, LatencyDuration: 3 * time.Second, LatencyEvery: 300 * time.Millisecond,
		IdleDuration: 2 * time.Second, Messages: 20, Conversations: 5, DrainTimeout: time.Minute, Seed: 1,
	}
}

// claim is one property of a report, with the figures it was judged on.
type claim struct {
	what string
	ok   bool
	got  any
}

// verify fails the test for every claim that does not hold.
func verify(t *testing.T, claims []claim) {
	t.Helper()
	for _, c := range claims {
		if !c.ok {
			t.Errorf("%s: got %+v", c.what, c.got)
		}
	}
}

// distClaims are what any distribution of n measured durations must
// satisfy: n samples, ordered percentiles, a mean within the range. A
// zero or negative duration means a timestamp was never taken.
func distClaims(name string, d Dist, n int) []claim {
	return []claim{
		{name + ": one figure per delivered message", d.N == n, d},
		{name + ": positive", d.P50 > 0 && d.Mean > 0, d},
		{name + ": p50 ≤ p99 ≤ max", d.P50 <= d.P99 && d.P99 <= d.Max, d},
		{name + ": mean ≤ max", d.Mean <= d.Max, d},
	}
}

// check asserts what the tiny run must report: every message sent is
// delivered once, in order and correctly signed, and every figure was
// actually measured (a counter never filled in, or /proc never read,
// shows up as a zero).
func check(t *testing.T, rep *Report, err error, out string) {
	t.Helper()
	t.Log("\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	opts := tiny()
	l, b, c := rep.Latency, rep.Backlog, rep.Receiver
	claims := []claim{
		// First start: it ends at the first new_sessions poll.
		{"first start: window measured", rep.Bootstrap.Window > 0, rep.Bootstrap.Window},
		{"first start: a new_sessions poll", rep.Bootstrap.ByEndpoint["new_sessions"] >= 1, rep.Bootstrap},

		// 1. Latency: 3s at one message every 300ms on average.
		{"latency: messages sent", l.Sent > 0, l.Sent},
		{"latency: every message delivered", l.Delivered == l.Sent && l.Lost == 0, l},
		// Calls per delivered message, as printed: every message had to be
		// fetched, so there is at least one call.
		{"latency: calls per delivered message > 0", l.Calls.Total() > 0 && l.Delivered > 0, l.Calls},
		{"latency: a fetch", l.Calls.ByEndpoint["fetch_session_msgs"] >= 1, l.Calls},

		// 2. Idle: the window is the one asked for, and an idle bridge
		// still polls (every POLL_INTERVAL=1s ±10%, in a 2s window).
		{"idle: window", rep.Idle.Window == opts.IdleDuration, rep.Idle.Window},
		{"idle: new_sessions polls", rep.Idle.ByEndpoint["new_sessions"] >= 1, rep.Idle},

		// 3. Backlog: the bridge was stopped gracefully (a stop that had
		// to kill it fails the run), so nothing is delivered twice.
		{"backlog: size", b.Messages == opts.Messages && b.Conversations == opts.Conversations, b},
		{"backlog: every message delivered", b.Delivered == b.Messages && b.Lost == 0, b},
		{"backlog: no duplicates, in order", b.Duplicates == 0 && b.OutOfOrder == 0, b},
		{"backlog: a fetch per conversation", b.Calls.ByEndpoint["fetch_session_msgs"] >= opts.Conversations, b.Calls},
		{"backlog: drain timed", b.FirstReceipt > 0 && b.FirstReceipt <= b.Drain, fmt.Sprintf("first %s, drain %s", b.FirstReceipt, b.Drain)},
		// The calls up to the last fetch include every fetch.
		{"backlog: last fetch found", b.LastCall > 0 && b.CallsToLastFetch >= opts.Conversations, fmt.Sprintf("at %s, call %d", b.LastCall, b.CallsToLastFetch)},

		// 5. Baseline: the drain's payloads, all of them. (Its CPU figure,
		// 20 publishes, is often below the 10ms /proc resolution: not
		// asserted.)
		{"baseline: the drain's events", rep.Baseline.Events == b.Delivered, rep.Baseline},
		{"baseline: bytes and wall time", rep.Baseline.Bytes >= int64(rep.Baseline.Events) && rep.Baseline.Wall > 0, rep.Baseline},

		// The webhook over the whole run: one request per message, as
		// both stops were graceful.
		{"webhook: one request per message", c.Requests == l.Delivered+b.Delivered && c.Duplicates == 0, c},
		{"webhook: signed, expected, in order", c.BadSignatures == 0 && c.BadBodies == 0 && c.OutOfOrder == 0, c},
	}
	// Every delivered message was fetched after it was put on the fake and
	// before it reached the webhook, so each has a wait and a pipeline
	// figure.
	claims = append(claims, distClaims("latency", l.Latency, l.Delivered)...)
	claims = append(claims, distClaims("latency wait", l.Wait, l.Delivered)...)
	claims = append(claims, distClaims("latency fetched", l.Fetched, l.Delivered)...)
	claims = append(claims, distClaims("latency pipeline", l.Pipeline, l.Delivered)...)
	claims = append(claims, distClaims("backlog fetched", b.Fetched, b.Delivered)...)
	claims = append(claims, distClaims("backlog pipeline", b.Pipeline, b.Delivered)...)
	verify(t, claims)

	// 4. Resources, per phase. /proc/<pid>/stat gives CPU time in 10ms
	// steps (exact sums, truncated): a phase that starts a process or
	// moves messages uses several steps even without -race, while an
	// idle bridge may use less than one.
	phases := []struct {
		name    string
		usesCPU bool
	}{
		{"first start", true},
		{"latency", true},
		{"idle", false},
		{"backlog drain", true},
	}
	if len(rep.Phases) != len(phases) {
		t.Fatalf("%d phases, want %d: %+v", len(rep.Phases), len(phases), rep.Phases)
	}
	for i, want := range phases {
		s := rep.Phases[i]
		verify(t, []claim{
			{fmt.Sprintf("phase %d: name", i), s.Name == want.name, s.Name},
			{s.Name + ": wall time", s.Wall > 0, s.Wall},
			{s.Name + ": CPU time", s.CPU > 0 || (!want.usesCPU && s.CPU == 0), s.CPU},
			// A live process has resident memory; VmHWM is read with
			// VmRSS and is never below it.
			{s.Name + ": RSS", s.RSSEnd > 0 && s.RSSPeak >= s.RSSEnd && s.HWM >= s.RSSEnd, s},
		})
	}
	if d := rep.Phases[3].Wall; d != b.Drain {
		t.Errorf("backlog drain phase lasts %s, the drain %s: the phase is the drain", d, b.Drain)
	}

	for _, want := range []string{"1. latency", "idle:", "3. backlog drain", "4. resources", "5. baseline", "lost 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// The bridge as the command runs it: a subprocess configured by its
// environment (here the test binary, see TestMain).
func TestBenchSubprocess(t *testing.T) {
	t.Parallel()
	opts := tiny()
	opts.Bridge = []string{os.Args[0]}
	opts.BridgeEnv = []string{childEnv + "=1"}
	var out bytes.Buffer
	rep, err := Run(t.Context(), opts, &out)
	check(t, rep, err, out.String())
	if !strings.Contains(out.String(), "that process alone") {
		t.Error("the report does not say the figures are the subprocess's")
	}
}

func TestBenchInProcess(t *testing.T) {
	t.Parallel()
	opts := tiny()
	opts.InProcess = true
	var out bytes.Buffer
	rep, err := Run(t.Context(), opts, &out)
	check(t, rep, err, out.String())
}

// A bridge that cannot start fails the run with its log.
func TestBenchBridgeFails(t *testing.T) {
	t.Parallel()
	opts := tiny()
	opts.Bridge = []string{os.Args[0]}
	opts.BridgeEnv = []string{childEnv + "=1", "NATS_REPLICAS=9"}
	_, err := Run(t.Context(), opts, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "NATS_REPLICAS") {
		t.Fatalf("err = %v, want the bridge's complaint about NATS_REPLICAS", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}
