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

	"github.com/bilibridge/bilibridge/app"
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
	return app.Run(ctx, app.Options{Config: cfg, Accounts: logins, Logger: cfg.Logger(os.Stderr)})
}

func tiny() Options {
	return Options{
		PollInterval: time.Second, LatencyDuration: 3 * time.Second, LatencyEvery: 300 * time.Millisecond,
		IdleDuration: 2 * time.Second, Messages: 20, Conversations: 5, DrainTimeout: time.Minute, Seed: 1,
	}
}

func check(t *testing.T, rep *Report, err error, out string) {
	t.Helper()
	t.Log("\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Latency.Sent == 0 || rep.Latency.Lost != 0 {
		t.Errorf("latency phase: %d sent, %d lost", rep.Latency.Sent, rep.Latency.Lost)
	}
	b := rep.Backlog
	if b.Delivered != 20 || b.Lost != 0 || b.OutOfOrder != 0 || rep.Receiver.OutOfOrder != 0 || rep.Receiver.BadSignatures != 0 {
		t.Errorf("backlog: %+v, receiver %+v", b, rep.Receiver)
	}
	if b.Calls.ByEndpoint["fetch_session_msgs"] < 5 {
		t.Errorf("backlog calls %s: want a fetch per conversation", b.Calls)
	}
	if rep.Baseline.Events != 20 || rep.Baseline.Wall <= 0 {
		t.Errorf("baseline %+v", rep.Baseline)
	}
	if len(rep.Phases) != 4 || rep.Phases[3].CPU < 0 || rep.Phases[3].RSSPeak <= 0 {
		t.Errorf("phases %+v", rep.Phases)
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
