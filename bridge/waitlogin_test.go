package bridge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/testlog"
)

// Without a login the bridge serves /healthz (alive) and says on /readyz
// and / what is missing; the login written meanwhile is picked up.
func TestWaitForLogin(t *testing.T) {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CredentialsFile = filepath.Join(cfg.DataDir, "credentials.json")
	cfg.HTTPAddr = freeAddr(t)
	logger, logged := testlog.New(t)
	type result struct {
		logins []config.Login
		err    error
	}
	done := make(chan result, 1)
	go func() {
		l, err := bridge.WaitForLogin(context.Background(), &cfg, logger)
		done <- result{l, err}
	}()
	base := "http://" + cfg.HTTPAddr
	bustest.Eventually(t, "the waiting server", func() bool {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == 200
	})
	for path, want := range map[string]string{"/readyz": "no login: run `bilibridge login`", "/": "has no Bilibili login yet"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %q, want %q", path, res.StatusCode, b, want)
		}
		if path == "/readyz" && res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/readyz: %d, want 503", res.StatusCode)
		}
	}
	if err := account.WriteCredentials(cfg.CredentialsFile, bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct", DedeUserID: "425503913"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.logins) != 1 || r.logins[0].Credentials.UID() != 425503913 {
			t.Fatalf("WaitForLogin: %+v %v", r.logins, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the login written was not picked up")
	}
	// The address is free again for the bridge.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("HTTP_ADDR still held after the wait: %v", err)
	}
	ln.Close()
	if n := strings.Count(logged.String(), "no login:"); n != 1 {
		t.Errorf("said %d times, want once", n)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
