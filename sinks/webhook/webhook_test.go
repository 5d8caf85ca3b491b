package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

var t0 = time.Date(2024, 3, 2, 13, 20, 15, 0, time.UTC)

// request is what the receiver saw.
type request struct {
	method string
	header http.Header
	body   []byte
}

// receiver is an httptest endpoint that records every request and answers
// with handle (200 when nil).
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []request
}

func newReceiver(t testing.TB, handle http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{req.Method, req.Header.Clone(), body})
		r.mu.Unlock()
		if handle != nil {
			handle(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func newSink(t testing.TB, cfg webhook.Config) *webhook.Sink {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// event builds an event of type typ whose data holds a text of textLen bytes.
func event(t testing.TB, typ string, textLen int) events.Event {
	t.Helper()
	ev, err := events.New(425503913, typ, "425503913-7341755312943193481", "1/293793435", t0,
		map[string]string{"text": strings.Repeat("x", textLen)})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestDeliverSigned(t *testing.T) {
	for _, c := range []struct {
		name    string
		secrets []string
	}{
		{"no secret", nil},
		{"one secret", []string{vectorSecret}},
		{"rotation", []string{vectorSecret, otherSecret}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rcv := newReceiver(t, nil)
			s := newSink(t, webhook.Config{URL: rcv.srv.URL + "/hook", Secrets: mustSecrets(t, c.secrets...)})
			ev := event(t, events.TypeMessage, 20)
			if err := s.Deliver(context.Background(), ev); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			reqs := rcv.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			want, _ := ev.Marshal()
			if r.method != http.MethodPost || !bytes.Equal(r.body, want) {
				t.Errorf("%s with body %s, want POST of %s", r.method, r.body, want)
			}
			for k, v := range map[string]string{
				"Content-Type":      "application/json",
				"User-Agent":        "bilibridge-webhook/1",
				"webhook-id":        ev.ID,
				"webhook-timestamp": strconv.FormatInt(t0.Unix(), 10),
			} {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			sigs := strings.Fields(r.header.Get("webhook-signature"))
			if len(sigs) != len(c.secrets) {
				t.Fatalf("%d signatures (%q), want %d", len(sigs), sigs, len(c.secrets))
			}
			if _, ok := r.header["Webhook-Signature"]; len(c.secrets) == 0 && ok {
				t.Error("unsigned request has a webhook-signature header")
			}
			for _, sec := range c.secrets {
				if !specVerifies(t, sec, r.header, r.body) {
					t.Errorf("no signature verifies with %s…", sec[:8])
				}
				if err := webhook.Verify(mustSecrets(t, sec), r.header, r.body, time.Minute, t0); err != nil {
					t.Errorf("Verify: %v", err)
				}
			}
			if len(c.secrets) > 0 {
				if err := webhook.Verify(mustSecrets(t, c.secrets...), r.header, append(r.body, ' '), time.Minute, t0); !errors.Is(err, webhook.ErrNoMatch) {
					t.Errorf("Verify of a tampered body = %v", err)
				}
				if err := webhook.Verify(mustSecrets(t, c.secrets...), r.header, r.body, time.Minute, t0.Add(10*time.Minute)); !errors.Is(err, webhook.ErrTimestamp) {
					t.Errorf("Verify 10 minutes late = %v", err)
				}
			}
		})
	}
}

// TestRetrySameID: two attempts at one event carry the same webhook-id and
// each its own timestamp, and both verify.
func TestRetrySameID(t *testing.T) {
	var calls atomic.Int32
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	var tick atomic.Int64
	s := newSink(t, webhook.Config{
		URL:     rcv.srv.URL,
		Secrets: mustSecrets(t, vectorSecret),
		Now:     func() time.Time { return t0.Add(time.Duration(tick.Add(1)) * 3 * time.Second) },
	})
	ev := event(t, events.TypeMessage, 10)
	if err := s.Deliver(context.Background(), ev); err == nil {
		t.Fatal("first attempt against a 503 succeeded")
	}
	if err := s.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	a, b := reqs[0].header, reqs[1].header
	if a.Get("webhook-id") != ev.ID || b.Get("webhook-id") != ev.ID {
		t.Errorf("webhook-id %q then %q, want %q twice", a.Get("webhook-id"), b.Get("webhook-id"), ev.ID)
	}
	if a.Get("webhook-timestamp") == b.Get("webhook-timestamp") {
		t.Errorf("both attempts have timestamp %s", a.Get("webhook-timestamp"))
	}
	for _, r := range reqs {
		if !specVerifies(t, vectorSecret, r.header, r.body) {
			t.Errorf("attempt at %s does not verify", r.header.Get("webhook-timestamp"))
		}
	}
}

func TestStatus(t *testing.T) {
	type want struct {
		ok, retry, disable bool
		after              time.Duration
	}
	var (
		ok        = want{ok: true}
		retry     = want{retry: true}
		permanent = want{}
		disable   = want{disable: true}
	)
	for _, c := range []struct {
		code   int
		header map[string]string
		want   want
	}{
		{200, nil, ok},
		{201, nil, ok},
		{204, nil, ok},
		{410, nil, disable},
		{400, nil, permanent},
		{401, nil, permanent},
		{403, nil, permanent},
		{404, nil, permanent},
		{422, nil, permanent},
		{400, map[string]string{"Retry-After": "7"}, permanent},
		{408, nil, retry},
		{409, nil, retry},
		{425, nil, retry},
		{429, nil, retry},
		{500, nil, retry},
		{502, nil, retry},
		{503, nil, retry},
		{504, nil, retry},
		{429, map[string]string{"Retry-After": "7"}, want{retry: true, after: 7 * time.Second}},
		{503, map[string]string{"Retry-After": " 120 "}, want{retry: true, after: 2 * time.Minute}},
		{429, map[string]string{"Retry-After": t0.Add(90 * time.Second).Format(http.TimeFormat)}, want{retry: true, after: 90 * time.Second}},
		{429, map[string]string{"Retry-After": t0.Add(-time.Hour).Format(http.TimeFormat)}, retry},
		{429, map[string]string{"Retry-After": t0.Add(48 * time.Hour).Format(http.TimeFormat)}, want{retry: true, after: time.Hour}},
		{429, map[string]string{"Retry-After": "86400"}, want{retry: true, after: time.Hour}},
		{429, map[string]string{"Retry-After": "99999999999999999999"}, retry},
		{429, map[string]string{"Retry-After": "-5"}, retry},
		{429, map[string]string{"Retry-After": "soon"}, retry},
		{301, map[string]string{"Location": "/elsewhere"}, permanent},
		{302, map[string]string{"Location": "/elsewhere"}, permanent},
		{307, map[string]string{"Location": "/elsewhere"}, permanent},
		{308, map[string]string{"Location": "/elsewhere"}, permanent},
	} {
		name := strconv.Itoa(c.code)
		if v := c.header["Retry-After"]; v != "" {
			name += " Retry-After " + v
		}
		t.Run(name, func(t *testing.T) {
			var elsewhere atomic.Int32
			rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					elsewhere.Add(1)
					return
				}
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.code)
				io.WriteString(w, "the endpoint says why")
			})
			s := newSink(t, webhook.Config{URL: rcv.srv.URL + "/hook"})
			err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10))
			if c.want.ok {
				if err != nil {
					t.Fatalf("Deliver = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Deliver = nil, want an error")
			}
			retry, after, disable := sinks.Verdict(err)
			if got := (want{retry: retry, after: after, disable: disable}); got != c.want {
				t.Errorf("verdict %+v, want %+v (err %v)", got, c.want, err)
			}
			if msg := err.Error(); !strings.Contains(msg, strconv.Itoa(c.code)) || !strings.Contains(msg, "the endpoint says why") {
				t.Errorf("error %q lacks the status or the body", msg)
			}
			if c.code >= 300 && c.code < 400 {
				if elsewhere.Load() != 0 {
					t.Error("the redirect was followed")
				}
				if !strings.Contains(err.Error(), "redirect") {
					t.Errorf("error %q does not say redirect", err)
				}
			}
			if n := len(rcv.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestTransportFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		})
		s := newSink(t, webhook.Config{URL: rcv.srv.URL, Timeout: 100 * time.Millisecond})
		start := time.Now()
		err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10))
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Deliver took %s with a 100ms timeout", took)
		}
		if retry, _, _ := sinks.Verdict(err); err == nil || !retry {
			t.Fatalf("Deliver = %v, want a retryable error", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response within 100ms") {
			t.Errorf("error %q does not say timeout", err)
		}
	})
	t.Run("200 whose body outlasts the timeout", func(t *testing.T) {
		// A 200 whose body trickles past the timeout is still delivered:
		// the status is the answer.
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		})
		s := newSink(t, webhook.Config{URL: rcv.srv.URL, Timeout: 100 * time.Millisecond})
		if err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10)); err != nil {
			t.Errorf("Deliver = %v, want nil", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := newSink(t, webhook.Config{URL: "http://" + addr + "/hook"})
		err = s.Deliver(context.Background(), event(t, events.TypeMessage, 10))
		if retry, _, _ := sinks.Verdict(err); err == nil || !retry {
			t.Fatalf("Deliver = %v, want a retryable error", err)
		}
	})
	t.Run("caller cancelled", func(t *testing.T) {
		rcv := newReceiver(t, nil)
		s := newSink(t, webhook.Config{URL: rcv.srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.Deliver(ctx, event(t, events.TypeMessage, 10))
		if retry, _, _ := sinks.Verdict(err); !retry || !errors.Is(err, context.Canceled) {
			t.Errorf("Deliver = %v, want a retryable context.Canceled", err)
		}
	})
}

// countingTransport counts the response body bytes the client reads.
type countingTransport struct {
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body = &countingBody{resp.Body, &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func TestHugeResponseBody(t *testing.T) {
	for _, code := range []int{200, 500} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(code)
				chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
				for range (10 << 20) / len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			})
			ct := &countingTransport{}
			s := newSink(t, webhook.Config{URL: rcv.srv.URL, HTTPClient: &http.Client{Transport: ct}})
			err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10))
			if code == 200 && err != nil {
				t.Fatalf("Deliver = %v", err)
			}
			if code == 500 {
				if err == nil {
					t.Fatal("Deliver = nil against a 500")
				}
				if len(err.Error()) > 400 {
					t.Errorf("error of %d bytes: %.100s…", len(err.Error()), err)
				}
			}
			// The transport reads in buffers of a few KiB, so allow one.
			if n := ct.read.Load(); n > 64<<10+32<<10 {
				t.Errorf("read %d bytes of the response, want at most 64 KiB", n)
			}
		})
	}
}

func TestEventFiltering(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := newSink(t, webhook.Config{URL: rcv.srv.URL, Events: []string{events.TypeMessage}})
	if err := s.Deliver(context.Background(), event(t, events.TypeRecall, 10)); err != nil {
		t.Fatalf("Deliver of a recall: %v", err)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("a recall made %d requests to a message-only sink", n)
	}
	if err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10)); err != nil {
		t.Fatalf("Deliver of a message: %v", err)
	}
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d requests after a message, want 1", n)
	}

	// A sink's own dead letters are not sent back to it; others' are.
	dl := webhook.Config{URL: rcv.srv.URL, Events: []string{events.TypeDeadLetter}}
	s = newSink(t, dl)
	for _, c := range []struct {
		sink  string
		calls int
	}{{s.Name(), 0}, {"telegram", 1}} {
		ev, err := events.New(1, events.TypeDeadLetter, "1-dead-"+c.sink, "", t0, events.DeadLetterData{Sink: c.sink, Reason: "x"})
		if err != nil {
			t.Fatal(err)
		}
		before := len(rcv.requests())
		if err := s.Deliver(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if n := len(rcv.requests()) - before; n != c.calls {
			t.Errorf("dead letter of %s: %d requests, want %d", c.sink, n, c.calls)
		}
	}
}

func TestSubjects(t *testing.T) {
	for _, c := range []struct {
		prefix string
		events []string
		want   []string
	}{
		{"", nil, []string{"bili.*.msg.>", "bili.*.recall.>"}},
		{"bb", []string{events.TypeMessage}, []string{"bb.*.msg.>"}},
		{"bili", []string{events.TypeRecall}, []string{"bili.*.recall.>"}},
		{"bili", []string{events.TypeSendFailed, events.TypeSendSucceeded}, []string{"bili.*.sent.>"}},
		{"bili", []string{events.TypeAccountStatus}, []string{"bili.*.account"}},
		{"bili", []string{events.TypeDeadLetter}, []string{"bili.*.dead.>"}},
		{"bili", []string{events.TypeTeamNote, events.TypeTeamAssigned}, []string{"bili.*.team.>"}},
		{"bili", []string{events.TypeDeadLetter, events.TypeMessage, events.TypeMessage, events.TypeAccountStatus, events.TypeSendFailed, events.TypeRecall},
			[]string{"bili.*.msg.>", "bili.*.recall.>", "bili.*.sent.>", "bili.*.account", "bili.*.dead.>"}},
	} {
		s := newSink(t, webhook.Config{URL: "https://example.com/hook", Events: c.events})
		if got := s.Subjects(events.Subjects{Prefix: c.prefix}); !slices.Equal(got, c.want) {
			t.Errorf("prefix %q, events %v: Subjects = %q, want %q", c.prefix, c.events, got, c.want)
		}
	}
	// Every type has its filter, and every filter is one the stream
	// carries (all of them but the replays, which the runtime adds per
	// sink).
	all := events.Subjects{}.Events()
	all = slices.DeleteFunc(all, func(f string) bool { return f == "bili.*.replay.*" })
	s := newSink(t, webhook.Config{URL: "https://example.com/hook", Events: events.Types})
	if got := s.Subjects(events.Subjects{}); !slices.Equal(got, all) {
		t.Errorf("all types: %q, want events.Subjects.Events() but replays %q", got, all)
	}
}

func TestName(t *testing.T) {
	a := newSink(t, webhook.Config{URL: "https://example.com/hook?token=s3cr3t-token"})
	b := newSink(t, webhook.Config{URL: "https://example.com/hook?token=s3cr3t-token"})
	c := newSink(t, webhook.Config{URL: "https://example.com/hook?token=other"})
	if a.Name() != b.Name() {
		t.Errorf("same URL, names %q and %q", a.Name(), b.Name())
	}
	if a.Name() == c.Name() {
		t.Errorf("different URLs, same name %q", a.Name())
	}
	for _, n := range []string{a.Name(), c.Name()} {
		if !regexp.MustCompile(`^webhook-[0-9a-f]{8}$`).MatchString(n) || events.Token(n) != n {
			t.Errorf("name %q is not webhook-<8 hex>", n)
		}
	}
	// Stable across releases: a change here renames every durable consumer.
	if got := newSink(t, webhook.Config{URL: "https://example.com/hook"}).Name(); got != "webhook-19f13522" {
		t.Errorf("name of https://example.com/hook = %q; changing it renames users' consumers", got)
	}
}

func TestParseURLs(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{" , ", nil, false},
		{"https://a.example/hook", []string{"https://a.example/hook"}, false},
		{" https://a.example/x?token=1 ,http://127.0.0.1:9000/y, ", []string{"https://a.example/x?token=1", "http://127.0.0.1:9000/y"}, false},
		{"ftp://a.example/x", nil, true},
		{"a.example/hook", nil, true},
		{"/hook", nil, true},
		{"https://", nil, true},
		{"https://:80/x", nil, true},
		{"https://a.example/%zz?token=s3cr3t", nil, true},
		{"https://a.example/x,https://a.example/x", nil, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := webhook.ParseURLs(c.in)
			if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
				t.Errorf("ParseURLs = %q, %v; want %q, error %v", got, err, c.want, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q quotes the URL's query", err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	for name, cfg := range map[string]webhook.Config{
		"no URL":             {},
		"relative URL":       {URL: "/hook"},
		"unknown event type": {URL: "https://a.example", Events: []string{"com.bilibili.dm.mesage"}},
		"negative timeout":   {URL: "https://a.example", Timeout: -time.Second},
		"zero secret":        {URL: "https://a.example", Secrets: []webhook.Secret{{}}},
	} {
		if _, err := webhook.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestNoLeaks: neither the secret nor the URL's query (a token) appears in
// an error or a log line, whatever the endpoint answers.
func TestNoLeaks(t *testing.T) {
	const token = "s3cr3t-t0ken"
	key := strings.TrimPrefix(vectorSecret, "whsec_")
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, "bad token "+r.URL.RawQuery+" for "+r.URL.String()+" signed "+r.Header.Get("webhook-signature"))
		}
	}
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}()
	for name, c := range map[string]struct {
		handle  http.HandlerFunc
		baseURL string
	}{
		"401 echoing the request": {handle: echo(401)},
		"500 echoing the request": {handle: echo(500)},
		"410":                     {handle: echo(410)},
		"redirect": {handle: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/other?token="+token+"&pass=whsec_"+key, http.StatusFound)
		}},
		"timeout": {handle: func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
		"connection refused": {baseURL: refused},
	} {
		t.Run(name, func(t *testing.T) {
			base := c.baseURL
			if base == "" {
				base = newReceiver(t, c.handle).srv.URL
			}
			var logs bytes.Buffer
			s := newSink(t, webhook.Config{
				URL:     base + "/hook?token=" + token + "&x=" + token + "%2F",
				Secrets: mustSecrets(t, vectorSecret),
				Timeout: 200 * time.Millisecond,
				Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10))
			if err == nil {
				t.Fatal("Deliver = nil")
			}
			for _, out := range []string{err.Error(), logs.String(), s.Name()} {
				for _, secret := range []string{token, key} {
					if strings.Contains(out, secret) {
						t.Errorf("%q shows %q", out, secret)
					}
				}
			}
			if !strings.Contains(err.Error(), "/hook?[redacted]") {
				t.Errorf("error %q does not name the endpoint", err)
			}
		})
	}
}

func TestUnsignedWarning(t *testing.T) {
	rcv := newReceiver(t, nil)
	var logs bytes.Buffer
	s := newSink(t, webhook.Config{URL: rcv.srv.URL, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		if err := s.Deliver(context.Background(), event(t, events.TypeMessage, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "not signed"); n != 1 {
		t.Errorf("%d warnings about unsigned requests, want 1:\n%s", n, logs.String())
	}
}

// BenchmarkDeliver delivers ~1 KB message events, signed with two secrets,
// to a local receiver.
func BenchmarkDeliver(b *testing.B) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(rcv.Close)
	s, err := webhook.New(webhook.Config{
		URL:     rcv.URL + "/hook",
		Secrets: mustSecrets(b, vectorSecret, otherSecret),
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ev := event(b, events.TypeMessage, 800)
	raw, _ := ev.Marshal()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		if err := s.Deliver(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// Describe names the endpoint for people, without its secrets.
func TestDescribe(t *testing.T) {
	s := newSink(t, webhook.Config{URL: "https://user:pw@hooks.example.com/bili?token=s3cr3t-token"})
	d := sinks.Describe(s)
	if !strings.HasPrefix(d, "webhook https://") || !strings.Contains(d, "hooks.example.com/bili") {
		t.Errorf("Describe = %q", d)
	}
	for _, secret := range []string{"s3cr3t-token", "pw"} {
		if strings.Contains(d, secret) {
			t.Errorf("Describe = %q shows %q", d, secret)
		}
	}
}
