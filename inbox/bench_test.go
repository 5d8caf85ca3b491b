package inbox_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/memory"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/inbox"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

// Benchmarks of the inbox in a real headless Chromium, against the team
// state of a bridge process (embedded JetStream, projection, service,
// presence, the API and the inbox over loopback HTTP) holding 1,000
// conversations of one message each. Everything shares the machine.
// Nothing is asserted about time; the figures are reported:
//
//	go test -run '^$' -bench BenchmarkInbox -benchtime 1x -timeout 20m ./inbox
//
// -inbox.loads, -inbox.publishes and -inbox.clients change how often a
// figure is sampled.
var (
	benchLoads     = flag.Int("inbox.loads", 10, "page loads per first-render benchmark")
	benchPublishes = flag.Int("inbox.publishes", 50, "published messages per publish-to-screen benchmark")
	benchClients   = flag.Int("inbox.clients", 100, "event-stream clients of the server memory benchmark")
)

const (
	benchConversations = 1000
	benchPassword      = "bench horse battery staple"
	benchPageSize      = 50 // what app.js asks the API for
	// natsSettle lets NATS drop the message blocks it cached (the file
	// store keeps them 10 s) before the Go heap is measured.
	natsSettle = 11 * time.Second
	// The helper process of BenchmarkInboxServerMemory holds the event
	// streams: its environment.
	envClientsURL   = "BILIBRIDGE_INBOX_BENCH_URL"
	envClientsToken = "BILIBRIDGE_INBOX_BENCH_TOKEN"
	envClientsN     = "BILIBRIDGE_INBOX_BENCH_CLIENTS"
	envClientsWant  = "BILIBRIDGE_INBOX_BENCH_EVENTS"
)

// benchWorld is the team state of one bridge process with 1,000
// conversations, served as the binary serves it (inbox at /, API under
// /api/v1), and a member "ana" who signs in with benchPassword.
type benchWorld struct {
	rig  *teamtest.Rig
	base string
	// keys are the conversations in the order their message was
	// published: the last is the most recently active, first in the list.
	keys  []events.ConversationKey
	texts []string
	msg   atomic.Uint64
}

func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	rig := teamtest.New(b)
	rig.AddMember("ana", team.RoleAgent)
	if err := rig.Members.SetPassword(context.Background(), "ana", benchPassword); err != nil {
		b.Fatal(err)
	}
	proc := rig.Process(teamtest.Options{})
	presence := team.NewPresence(rig.Conn.NC, events.Subjects{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = presence.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	in := inbox.New(inbox.Config{Sessions: team.NewSessions(rig.Store.Sessions, rig.Members), Members: rig.Members,
		Accounts: []inbox.Account{{UID: teamtest.UID, Name: "me"}}})
	mux := http.NewServeMux()
	mux.Handle(api.Prefix, api.New(api.Config{Members: rig.Members, Sessions: in, Team: proc.Service,
		Projection: proc.Projection, Stream: rig.Store.Events, Presence: presence}))
	mux.Handle("/", in)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)

	w := &benchWorld{rig: rig, base: srv.URL}
	w.msg.Store(7354295169900000000)
	start := time.Now()
	for i := range benchConversations {
		k := events.ConversationKey{AccountUID: teamtest.UID, SessionType: 1, TalkerID: 1_000_000 + uint64(i)}
		text := fmt.Sprintf("message %d: 你好，想问一下下个月合作的事情", i)
		if err := w.publish(context.Background(), k, text); err != nil {
			b.Fatal(err)
		}
		w.keys = append(w.keys, k)
		w.texts = append(w.texts, text)
	}
	// Until the projection lists them all.
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; n < benchConversations; {
		if time.Now().After(deadline) {
			b.Fatalf("the projection lists %d of %d conversations", n, benchConversations)
		}
		time.Sleep(20 * time.Millisecond)
		n = 0
		for cursor := ""; ; {
			got, next, err := proc.Service.List(team.Filter{Status: "all"}, cursor, 200)
			if err != nil {
				b.Fatal(err)
			}
			n += len(got)
			if cursor = next; cursor == "" {
				break
			}
		}
	}
	b.Logf("%d conversations published and projected in %v", benchConversations, time.Since(start).Round(time.Millisecond))
	return w
}

// publish publishes an incoming text message of conversation k, as the
// bridge's poller does.
func (w *benchWorld) publish(ctx context.Context, k events.ConversationKey, text string) error {
	key := w.msg.Add(1)
	at := time.Now().UTC()
	ev, err := events.New(k.AccountUID, events.TypeMessage, events.MessageID(k.AccountUID, key), k.Subject(), at, events.MessageData{
		AccountUID:   k.AccountUID,
		Conversation: events.Conversation{SessionType: k.SessionType, TalkerID: k.TalkerID, Kind: "user", Name: fmt.Sprintf("fan %d", k.TalkerID)},
		Message: events.Message{MsgKey: key, Seqno: key % 1_000_000, Direction: "in", SenderUID: int64(k.TalkerID),
			Timestamp: at, MsgType: 1, Kind: events.KindText, Text: text, Status: events.StatusNormal},
	})
	if err != nil {
		return err
	}
	return w.rig.Pub.Publish(ctx, events.Subjects{}.Message(k.AccountUID, k.SessionType, k.TalkerID), ev)
}

func benchDataKey(k events.ConversationKey) string {
	return fmt.Sprintf("%d.%d.%d", k.AccountUID, k.SessionType, k.TalkerID)
}

// ---- the browser ----

// benchInit runs in every document before the page's scripts: it records,
// with the page's own clock, when #list first holds items, and lets the
// benchmark watch for a text in an element (a MutationObserver notes
// Date.now() when it appears, then the next animation frame).
const benchInit = `(() => {
  const b = window.__bench = {};
  b.listDone = new Promise((resolve) => {
    const check = () => {
      const l = document.getElementById('list');
      if (!l || l.children.length === 0) return false;
      b.list = performance.now();
      b.items = l.children.length;
      requestAnimationFrame(() => { b.frame = performance.now(); resolve(); });
      return true;
    };
    const mo = new MutationObserver(() => { if (check()) mo.disconnect(); });
    mo.observe(document, { childList: true, subtree: true });
  });
  b.watches = new Map();
  b.watch = (sel, text) => {
    const el = document.querySelector(sel);
    b.watches.set(text, new Promise((resolve) => {
      const seen = () => el.textContent.includes(text);
      const done = () => { const dom = Date.now(); requestAnimationFrame(() => resolve({ dom, frame: Date.now() })); };
      if (seen()) { done(); return; }
      const mo = new MutationObserver(() => { if (seen()) { mo.disconnect(); done(); } });
      mo.observe(el, { childList: true, subtree: true, characterData: true });
    }));
    return true;
  };
  b.wait = (text) => b.watches.get(text).then((r) => { b.watches.delete(text); return r; });
  b.live = () => new Promise((resolve) => {
    const f = () => (document.getElementById('conn') || {}).textContent === '● live' ? resolve(true) : setTimeout(f, 10);
    f();
  });
})()`

// chromiumPath finds Debian's chromium, as chromium(t) does.
func chromiumPath(b *testing.B) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	b.Skip("no chromium found: install Debian's chromium package (apt-get install -y chromium)")
	return ""
}

// benchTab starts a headless Chromium of its own and returns its first
// tab, 1280×800, with benchInit in every document.
func benchTab(b *testing.B, flags ...chromedp.ExecAllocatorOption) context.Context {
	b.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(b)), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, flags...)...)
	b.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	b.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.Fatalf("starting chromium: %v", err)
	}
	benchDo(b, ctx, "the window size", chromedp.EmulateViewport(1280, 800))
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: benchInit}); err != nil {
		b.Fatalf("adding the benchmark's script: %v", err)
	}
	return ctx
}

// benchDo runs actions that return nothing.
func benchDo(tb testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// benchEval evaluates a JavaScript expression; a promise is awaited.
func benchEval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// benchCall runs one protocol command on the tab.
func benchCall[P, R any](tb testing.TB, ctx context.Context, cmd cdp.Command[P, R], params P) R {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := chromedp.Call(ctx, cmd, params)
	if err != nil {
		tb.Fatalf("%s: %v", cmd.Method, err)
	}
	return r
}

// signIn signs ana in through the page's form and waits for the list and
// the event stream.
func (w *benchWorld) signIn(b *testing.B, ctx context.Context) {
	b.Helper()
	benchDo(b, ctx, "sign in",
		chromedp.Navigate(w.base+"/"),
		chromedp.WaitVisible(`input[name=name]`),
		chromedp.SendKeys(`input[name=name]`, "ana"),
		chromedp.SendKeys(`input[name=password]`, benchPassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`#list li`),
	)
	benchEval[bool](b, ctx, `window.__bench.listDone.then(() => window.__bench.live())`)
}

// openConversation opens conversation i of w and waits until its history
// is shown.
func (w *benchWorld) openConversation(b *testing.B, ctx context.Context, i int) {
	b.Helper()
	benchDo(b, ctx, "open a conversation", chromedp.Click(fmt.Sprintf(`#list li[data-key="%s"]`, benchDataKey(w.keys[i]))))
	benchEval[bool](b, ctx, fmt.Sprintf(`window.__bench.watch('#messages', %q)`, w.texts[i]))
	benchEval[benchSeen](b, ctx, fmt.Sprintf(`window.__bench.wait(%q)`, w.texts[i]))
	benchEval[bool](b, ctx, `window.__bench.live()`)
}

// benchSeen is when a watched text appeared: Date.now() in the observer and
// in the next animation frame.
type benchSeen struct {
	DOM   float64 `json:"dom"`
	Frame float64 `json:"frame"`
}

// ---- figures ----

// benchPct is the nearest-rank percentile q (0–100) of xs.
func benchPct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func benchMean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// ---- 1. time to first render of the list ----

// loadSample is one load of /, in ms since navigation start (the page's
// performance.now()).
type loadSample struct {
	Response float64 `json:"response"` // the HTML's last byte
	DCL      float64 `json:"dcl"`      // DOMContentLoaded ended (app.js ran)
	APIStart float64 `json:"apiStart"` // GET /api/v1/conversations?… sent
	APIEnd   float64 `json:"apiEnd"`   // … and its last byte
	List     float64 `json:"list"`     // #list holds the first page
	Frame    float64 `json:"frame"`    // the next animation frame
	Items    int     `json:"items"`
}

const loadFigures = `window.__bench.listDone.then(() => {
  const n = performance.getEntriesByType('navigation')[0];
  const api = performance.getEntriesByType('resource').find((e) => e.name.includes('/api/v1/conversations?'));
  const b = window.__bench;
  return { response: n.responseEnd, dcl: n.domContentLoadedEventEnd, apiStart: api ? api.startTime : -1,
    apiEnd: api ? api.responseEnd : -1, list: b.list, frame: b.frame, items: b.items };
})`

// BenchmarkInboxFirstRender: a signed-in member loads / while the team
// has 1,000 conversations; from navigation start until #list shows the
// first page (50 items), with the browser's cache off (a first visit)
// and on (app.js, render.js, app.css cached, as on a reload).
func BenchmarkInboxFirstRender(b *testing.B) {
	w := newBenchWorld(b)
	ctx := benchTab(b)
	w.signIn(b, ctx)
	direct := w.listFromGo(b, 20)
	for _, c := range []struct {
		name string
		off  bool
	}{{"cold-cache", true}, {"warm-cache", false}} {
		b.Run(c.name, func(b *testing.B) {
			benchCall(b, ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: c.off})
			// One load not measured: it fills the cache, if on.
			benchDo(b, ctx, "a first load", chromedp.Navigate(w.base+"/"))
			benchEval[loadSample](b, ctx, loadFigures)
			var samples []loadSample
			for range b.N {
				for range *benchLoads {
					benchDo(b, ctx, "load /", chromedp.Navigate(w.base+"/"))
					s := benchEval[loadSample](b, ctx, loadFigures)
					if s.Items != benchPageSize {
						b.Fatalf("the list showed %d items first, want %d", s.Items, benchPageSize)
					}
					samples = append(samples, s)
				}
			}
			col := func(f func(loadSample) float64) []float64 {
				out := make([]float64, len(samples))
				for i, s := range samples {
					out[i] = f(s)
				}
				return out
			}
			list := col(func(s loadSample) float64 { return s.List })
			frame := col(func(s loadSample) float64 { return s.Frame })
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(benchPct(list, 50), "p50-ms")
			b.ReportMetric(benchPct(list, 99), "p99-ms")
			b.ReportMetric(benchPct(frame, 50), "frame-p50-ms")
			b.Logf("first render of the list (%d items of %d conversations), %s, %d loads: p50 %.1f ms, p99 %.1f ms (next frame p50 %.1f ms); p50 of: HTML done %.1f, DOMContentLoaded %.1f, list request sent %.1f, answered %.1f ms; the same request from a Go client, the browser idle: p50 %.1f ms, p99 %.1f ms",
				benchPageSize, benchConversations, c.name, len(samples), benchPct(list, 50), benchPct(list, 99), benchPct(frame, 50),
				benchPct(col(func(s loadSample) float64 { return s.Response }), 50), benchPct(col(func(s loadSample) float64 { return s.DCL }), 50),
				benchPct(col(func(s loadSample) float64 { return s.APIStart }), 50), benchPct(col(func(s loadSample) float64 { return s.APIEnd }), 50),
				benchPct(direct, 50), benchPct(direct, 99))
		})
	}
}

// listFromGo signs ana in with a Go client and times n requests of the
// list's first page as the page asks for it, in ms.
func (w *benchWorld) listFromGo(b *testing.B, n int) []float64 {
	b.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(w.base+"/login", url.Values{"name": {"ana"}, "password": {benchPassword}})
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		b.Fatalf("signing in from Go: %s", res.Status)
	}
	var ms []float64
	for range n {
		t0 := time.Now()
		res, err := c.Get(w.base + "/api/v1/conversations?status=open&limit=50")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET /api/v1/conversations from Go: %s", res.Status)
		}
	}
	return ms
}

// ---- 2. time from a publish to the message on screen ----

// BenchmarkInboxPublishToScreen: with a conversation open, a message event
// is published on NATS (the Go side notes time.Now() before publishing);
// the page notes Date.now() when the text is in the DOM: in #messages for
// the open conversation ("open"), in its #list item for another one
// ("list"). The same machine's clock on both sides.
func BenchmarkInboxPublishToScreen(b *testing.B) {
	w := newBenchWorld(b)
	ctx := benchTab(b)
	w.signIn(b, ctx)
	open := len(w.keys) - 1 // the first in the list
	w.openConversation(b, ctx, open)
	var seq int // every text is new (-count reruns the sub-benchmarks)
	for _, c := range []struct {
		name, sel string
		conv      func(i int) int
	}{
		{"open", "#messages", func(int) int { return open }},
		// Others of the first page (still in the list after their message).
		{"list", "#list", func(i int) int { return open - 1 - i%(benchPageSize-1) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var dom, frame, ack []float64
			for range b.N {
				for i := range *benchPublishes {
					seq++
					text := fmt.Sprintf("bench %s %d: 在吗？", c.name, seq)
					benchEval[bool](b, ctx, fmt.Sprintf(`window.__bench.watch(%q, %q)`, c.sel, text))
					t0 := time.Now()
					if err := w.publish(context.Background(), w.keys[c.conv(i)], text); err != nil {
						b.Fatal(err)
					}
					ack = append(ack, float64(time.Since(t0).Microseconds())/1000)
					s := benchEval[benchSeen](b, ctx, fmt.Sprintf(`window.__bench.wait(%q)`, text))
					at := float64(t0.UnixMicro()) / 1000
					dom = append(dom, s.DOM-at)
					frame = append(frame, s.Frame-at)
					// Let the page's follow-ups (the conversation read
					// again, marked read) pass: one event at a time.
					time.Sleep(250 * time.Millisecond)
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(benchPct(dom, 50), "p50-ms")
			b.ReportMetric(benchPct(dom, 99), "p99-ms")
			b.ReportMetric(benchPct(frame, 50), "frame-p50-ms")
			b.Logf("publish to screen (%s, %s), %d messages: p50 %.0f ms, p99 %.0f ms, max %.0f ms, mean %.1f ms (next frame p50 %.0f ms; the publish's ack p50 %.1f ms)",
				c.name, c.sel, len(dom), benchPct(dom, 50), benchPct(dom, 99), slices.Max(dom), benchMean(dom), benchPct(frame, 50), benchPct(ack, 50))
		})
	}
}

// ---- 3a. server memory per event-stream client ----

type heapSample struct {
	heapInuse, heapAlloc, stackInuse uint64
	goroutines                       int
}

func measureHeap() heapSample {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return heapSample{heapInuse: m.HeapInuse, heapAlloc: m.HeapAlloc, stackInuse: m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// BenchmarkInboxServerMemory: the Go heap in use (after runtime.GC) of the
// process serving the inbox with N clients on GET /api/v1/events (each
// with a member's token, each stream having carried a few events) minus
// without any. The clients are plain Go HTTP clients in a helper process
// (this test binary again), so that their own memory is not counted.
func BenchmarkInboxServerMemory(b *testing.B) {
	if os.Getenv(envClientsURL) != "" {
		holdEventStreams(b)
		return
	}
	w := newBenchWorld(b)
	tok := w.rig.AddMember("streams", team.RoleAgent)
	n := *benchClients
	const warm = 3 // messages each stream carries before it is measured
	warmUp := func() {
		for i := range warm {
			if err := w.publish(context.Background(), w.keys[i], fmt.Sprintf("warm-up %d", i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	var perInuse, perAlloc, perStack, perG []float64
	for range b.N {
		warmUp()
		time.Sleep(natsSettle)
		before := measureHeap()

		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkInboxServerMemory$", "-test.benchtime=1x")
		cmd.Env = append(os.Environ(), envClientsURL+"="+w.base, envClientsToken+"="+tok,
			envClientsN+"="+strconv.Itoa(n), envClientsWant+"="+strconv.Itoa(warm))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := make(chan string, 64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		await := func(want string) {
			timeout := time.After(2 * time.Minute)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						_ = cmd.Wait()
						b.Fatalf("the client process ended before %q: %s", want, stderr.String())
					}
					if l == want {
						return
					}
				case <-timeout:
					_ = cmd.Process.Kill()
					b.Fatalf("the client process never said %q", want)
				}
			}
		}
		await("inbox-bench: connected")
		warmUp()
		await("inbox-bench: received")
		time.Sleep(natsSettle)
		with := measureHeap()

		stdin.Close()
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("the client process: %v: %s", err, stderr.String())
		}
		time.Sleep(time.Second)
		after := measureHeap()

		d := func(x, y uint64) float64 { return (float64(x) - float64(y)) / float64(n) / 1024 }
		perInuse = append(perInuse, d(with.heapInuse, before.heapInuse))
		perAlloc = append(perAlloc, d(with.heapAlloc, before.heapAlloc))
		perStack = append(perStack, d(with.stackInuse, before.stackInuse))
		perG = append(perG, float64(with.goroutines-before.goroutines)/float64(n))
		b.Logf("heap in use: %.1f MiB without clients, %.1f MiB with %d, %.1f MiB after they left; live heap %.1f → %.1f MiB; stacks %.1f → %.1f MiB; goroutines %d → %d",
			benchMiB(before.heapInuse), benchMiB(with.heapInuse), n, benchMiB(after.heapInuse), benchMiB(before.heapAlloc), benchMiB(with.heapAlloc),
			benchMiB(before.stackInuse), benchMiB(with.stackInuse), before.goroutines, with.goroutines)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(benchMean(perInuse), "heap-KiB/client")
	b.ReportMetric(benchMean(perAlloc), "live-KiB/client")
	b.ReportMetric(benchMean(perStack), "stack-KiB/client")
	b.ReportMetric(benchMean(perG), "goroutines/client")
	b.Logf("server memory per event-stream client (%d clients): heap in use %.1f KiB, live heap %.1f KiB, goroutine stacks %.1f KiB, %.1f goroutines",
		n, benchMean(perInuse), benchMean(perAlloc), benchMean(perStack), benchMean(perG))
}

func benchMiB(x uint64) float64 { return float64(x) / (1 << 20) }

// holdEventStreams is the helper process: it opens the event streams,
// says "inbox-bench: connected", reads until each carried the events it
// waits for, says "inbox-bench: received", and holds them until its
// stdin closes.
func holdEventStreams(b *testing.B) {
	url, tok := os.Getenv(envClientsURL), os.Getenv(envClientsToken)
	n, _ := strconv.Atoi(os.Getenv(envClientsN))
	want, _ := strconv.Atoi(os.Getenv(envClientsWant))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var received sync.WaitGroup
	for range n {
		req, err := http.NewRequest("GET", url+"/api/v1/events", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET /api/v1/events: %s", res.Status)
		}
		received.Add(1)
		go func() {
			defer res.Body.Close()
			sc := bufio.NewScanner(res.Body)
			got := 0
			for sc.Scan() {
				if sc.Text() == "event: "+events.TypeMessage {
					if got++; got == want {
						received.Done()
					}
				}
			}
		}()
	}
	fmt.Println("inbox-bench: connected")
	received.Wait()
	fmt.Println("inbox-bench: received")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// ---- 3b. browser memory of one signed-in tab ----

type jsMemory struct {
	Used  float64 `json:"used"`
	Total float64 `json:"total"`
	Limit float64 `json:"limit"`
}

// BenchmarkInboxBrowserMemory: one signed-in tab with the list of the
// 1,000 conversations loaded (its first page, as the page shows it; then
// all 20 pages through "More") and a conversation open:
// performance.memory.usedJSHeapSize after a garbage collection
// (--enable-precise-memory-info), the DOM's size, and the renderer
// process's RSS and PSS.
func BenchmarkInboxBrowserMemory(b *testing.B) {
	w := newBenchWorld(b)
	ctx := benchTab(b, chromedp.Flag("enable-precise-memory-info", true))
	w.signIn(b, ctx)
	w.openConversation(b, ctx, len(w.keys)-1)
	measure := func(b *testing.B, what string) {
		time.Sleep(500 * time.Millisecond)
		benchCall(b, ctx, heapprofiler.CollectGarbage, cdp.Empty{})
		m := benchEval[jsMemory](b, ctx, `({ used: performance.memory.usedJSHeapSize, total: performance.memory.totalJSHeapSize, limit: performance.memory.jsHeapSizeLimit })`)
		usage := benchCall(b, ctx, cdpruntime.GetHeapUsage, cdp.Empty{})
		dom := benchCall(b, ctx, memory.GetDOMCounters, cdp.Empty{})
		items := benchEval[int](b, ctx, `document.querySelectorAll('#list li').length`)
		rss, pss, renderers := rendererMemory(ctx)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(m.Used/(1<<20), "js-heap-MiB")
		if rss > 0 {
			b.ReportMetric(float64(rss)/(1<<10), "renderer-rss-MiB")
			b.ReportMetric(float64(pss)/(1<<10), "renderer-pss-MiB")
		}
		b.Logf("one tab, %s (%d list items, a conversation open): usedJSHeapSize %.2f MiB (total %.2f MiB; Runtime.getHeapUsage used %.2f MiB, embedder heap %.2f MiB, backing stores %.2f MiB); DOM %d nodes, %d listeners, %d documents; renderer process RSS %.0f MiB, PSS %.0f MiB (largest of %d renderers)",
			what, items, m.Used/(1<<20), m.Total/(1<<20), usage.UsedSize/(1<<20), usage.EmbedderHeapUsedSize/(1<<20), usage.BackingStorageSize/(1<<20),
			dom.Nodes, dom.JsEventListeners, dom.Documents, float64(rss)/(1<<10), float64(pss)/(1<<10), renderers)
	}
	b.Run("first-page", func(b *testing.B) {
		for range b.N {
			measure(b, "first page of the list")
		}
	})
	b.Run("all-pages", func(b *testing.B) {
		for benchEval[bool](b, ctx, `!document.getElementById('more').hidden`) {
			before := benchEval[int](b, ctx, `document.querySelectorAll('#list li').length`)
			benchDo(b, ctx, "more", chromedp.Click(`#more`))
			benchEval[bool](b, ctx, fmt.Sprintf(`new Promise((r) => { const f = () => document.querySelectorAll('#list li').length > %d ? r(true) : setTimeout(f, 10); f(); })`, before))
		}
		for range b.N {
			measure(b, "all pages of the list")
		}
	})
}

// rendererMemory is the RSS and PSS in KiB of the largest renderer
// process of the tab's browser, and how many renderers it has.
func rendererMemory(ctx context.Context) (rss, pss int64, renderers int) {
	c := chromedp.FromContext(ctx)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		return 0, 0, 0
	}
	root := c.Browser.Process().Pid
	parent := map[int]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 {
			parent[pid], _ = strconv.Atoi(fields[1])
		}
	}
	descends := func(pid int) bool {
		for i := 0; i < 16 && pid > 1; i++ {
			if pid = parent[pid]; pid == root {
				return true
			}
		}
		return false
	}
	for pid := range parent {
		if !descends(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmdline), "--type=renderer") {
			continue
		}
		renderers++
		rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		var r, p int64
		for _, line := range strings.Split(string(rollup), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				switch f[0] {
				case "Rss:":
					r, _ = strconv.ParseInt(f[1], 10, 64)
				case "Pss:":
					p, _ = strconv.ParseInt(f[1], 10, 64)
				}
			}
		}
		if r > rss {
			rss, pss = r, p
		}
	}
	return rss, pss, renderers
}
