package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// sinkLeaseKey is the lease of the webhook sink to r.
func sinkLeaseKey(t *testing.T, r *receiver) string {
	t.Helper()
	s, err := webhook.New(webhook.Config{URL: r.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return "sink." + events.Token(s.Name())
}

// binary is the bilibridge command built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bilibridge-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "faults: no module root (go env GOMOD: %q, %v)\n", out, err)
		return 1
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	binary = filepath.Join(dir, "bilibridge")
	build := exec.Command("go", "build", "-o", binary, "./cmd/bilibridge")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: building bilibridge: %v\n%s", err, b)
		return 1
	}
	return m.Run()
}

// proc is the bridge running as a child process, restarted after each
// kill; its stderr from every run goes to one log file.
type proc struct {
	t   *testing.T
	env []string
	log string

	mu   sync.Mutex
	cmd  *exec.Cmd
	runs int
}

func (p *proc) start() {
	p.t.Helper()
	if err := p.tryStart(); err != nil {
		p.t.Fatal(err)
	}
}

// tryStart starts the process; unlike start it may be called from any
// goroutine.
func (p *proc) tryStart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.runs++
	fmt.Fprintf(f, "===== run %d at %s\n", p.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(binary, "run")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	f.Close() // the child holds its own descriptor
	p.cmd = cmd
	return nil
}

// kill SIGKILLs the running process and reaps it.
func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// stop ends the process with SIGTERM (a clean shutdown).
func (p *proc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

func (p *proc) String() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *proc) grep(s string) []string {
	var out []string
	for _, line := range strings.Split(p.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func bridgeEnv(w *world, r *receiver, natsURL, dataDir string) []string {
	u := w.fake.URL()
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BILI_API_URL=" + u, "BILI_MAIN_API_URL=" + u, "BILI_PASSPORT_URL=" + u, "BILI_WWW_URL=" + u,
		"BILI_SESSDATA=" + sessdata, "BILI_JCT=" + biliJct, fmt.Sprintf("BILI_UID=%d", accountUID),
		"DATA_DIR=" + dataDir, "NATS_URL=" + natsURL, "HTTP_ADDR=",
		"POLL_INTERVAL=200ms", "POLL_UNSAFE=1",
		"WEBHOOK_URLS=" + r.URL(), "WEBHOOK_SECRET=" + secret,
		"LOG_LEVEL=info",
	}
}

// TestSIGKILL kills the bridge process with SIGKILL at random moments
// while 2,000 messages arrive in 20 conversations, restarting it right
// after each kill, and checks that every message reaches the webhook
// once at least, in order per conversation. Each restarted process
// takes back the poller and sink leases the killed one left (it holds
// them under the same name, lease.Holder).
func TestSIGKILL(t *testing.T) {
	sigkill(t, "sigkill", 2000, 5, 25*time.Second, "")
}

// TestSIGKILLTakesBackItsLeases kills the bridge once with leases that
// last 10 minutes: only a restarted process that takes back the leases
// its predecessor died holding delivers anything before the test's
// deadline (150 s).
func TestSIGKILLTakesBackItsLeases(t *testing.T) {
	sigkill(t, "sigkill-long-lease", 500, 1, 5*time.Second, "10m")
}

func sigkill(t *testing.T, scenario string, messages, kills int, sendFor time.Duration, leaseTTL string) {
	const convs = 20
	w := newWorld(t, convs)
	r := newReceiver(t)
	ns := bustest.StartServer(t)
	env := bridgeEnv(w, r, ns.URL, t.TempDir())
	if leaseTTL != "" {
		env = append(env, "LEASE_TTL="+leaseTTL)
	}
	p := &proc{t: t, env: env, log: filepath.Join(t.TempDir(), "bridge.log")}
	dumpOnFailure(t, "bridge", p)
	t.Cleanup(p.stop)

	start := time.Now()
	p.start()
	waitPolling(t, w, 30*time.Second)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sending := make(chan struct{})
	go func() { defer close(sending); w.sendOver(ctx, messages, sendFor, seed) }()

	// Kill at random moments while the messages arrive.
	var at []time.Duration
	for range kills {
		at = append(at, time.Duration((1+rng.Float64()*(sendFor.Seconds()-2))*float64(time.Second)))
	}
	slices.Sort(at)
	var killedAt []time.Time
	for i := 1; i < len(at); i++ { // let each process get going
		at[i] = max(at[i], at[i-1]+time.Second)
	}
	sendStart := time.Now()
	for i, d := range at {
		time.Sleep(time.Until(sendStart.Add(d)))
		p.kill()
		killedAt = append(killedAt, time.Now())
		t.Logf("SIGKILL %d at %s (%d sent, %d delivered)", i+1, time.Since(sendStart).Round(time.Millisecond), w.sentCount(), r.delivered(w))
		p.start()
	}
	<-sending
	sentAt := time.Now()
	all := r.waitAll(w, 150*time.Second)
	t.Logf("after the last message was sent, delivery took %s more", time.Since(sentAt).Round(100*time.Millisecond))
	for i, k := range killedAt {
		if first := r.firstArrivalAfter(k); !first.IsZero() {
			t.Logf("SIGKILL %d: next new webhook delivery %s after the kill", i+1, first.Sub(k).Round(10*time.Millisecond))
		}
	}
	how := "restarted at once"
	if leaseTTL != "" {
		how += ", LEASE_TTL=" + leaseTTL
	}
	rp := finish(t, scenario, fmt.Sprintf("%d SIGKILLs of the bridge process, each %s", kills, how), w, r, start)
	if !all {
		t.Errorf("not everything arrived: %d of %d", rp.Delivered, rp.Sent)
	}
	for _, l := range p.grep("lease acquired") {
		t.Log(l)
	}
}
