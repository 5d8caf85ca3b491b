package bridge_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/testlog"
)

// The demo serves the inbox with a member whose password it prints, and
// that password signs in; it answers some DMs itself through the sender,
// and sums up when it stops.
func TestDemoServesTheInbox(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out testlog.Buffer
	started := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- bridge.Demo(ctx, bridge.DemoOptions{Out: &out, Log: &bytes.Buffer{}, Every: 200 * time.Millisecond, HTTPAddr: "127.0.0.1:0",
			Started: func(_ *bridge.Bridge, u, pw string) { started <- [2]string{u, pw} }})
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	var site [2]string
	select {
	case site = <-started:
	case err := <-done:
		t.Fatalf("the demo stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not start")
	}
	if !strings.Contains(out.String(), site[1]) || !strings.Contains(out.String(), site[0]) {
		t.Fatalf("the demo does not print where and how to sign in:\n%s", out.String())
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(site[0]+"/login", url.Values{"name": {bridge.DemoMember}, "password": {site[1]}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Set-Cookie") == "" {
		t.Fatalf("signing in with the printed password: %d", res.StatusCode)
	}
	bustest.Eventually(t, "a reply of the demo, sent", func() bool {
		return strings.Contains(out.String(), "⇢") && strings.Contains(out.String(), "→") && strings.Contains(out.String(), "✓")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("the demo ended with %v", err)
	}
	stopped = true
	text := out.String()
	if strings.Contains(text, "not a CloudEvent") {
		t.Error("the demo's tail shows send commands as errors")
	}
	if !strings.Contains(text, "Demo over:") || strings.Contains(text, " 0 replies went out") || !strings.Contains(text, "bilibridge login") {
		t.Errorf("the demo's end:\n%s", text[strings.LastIndex(text, "Demo over")-1:])
	}
}
