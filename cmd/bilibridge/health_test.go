package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	_, bridgePort, err := net.SplitHostPort(runBridgeHTTP(t))
	if err != nil {
		t.Fatal(err)
	}
	// A server that is up but not well: /healthz answers 503.
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(sick.Close)
	// A server that answers 200 anywhere but /healthz: the probe must ask
	// the right path.
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(elsewhere.Close)

	for _, tc := range []struct {
		name     string
		httpAddr string
		want     string // in the error; "" = healthy
	}{
		{"bridge on loopback", "127.0.0.1:" + bridgePort, ""},
		{"bridge on every IPv4 interface", "0.0.0.0:" + bridgePort, ""},
		{"bridge on every IPv6 interface", "[::]:" + bridgePort, ""},
		{"bridge on every interface, no host", ":" + bridgePort, ""},
		{"nothing listening", closedAddr(t), "nothing listens there"},
		{"503", strings.TrimPrefix(sick.URL, "http://"), "503"},
		{"no /healthz", strings.TrimPrefix(elsewhere.URL, "http://"), "404"},
		{"HTTP off", "", "HTTP_ADDR is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("HTTP_ADDR", tc.httpAddr)
			var out bytes.Buffer
			err := run(context.Background(), []string{"health"}, &out, &out)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("health of a live bridge at HTTP_ADDR=%s: %v", tc.httpAddr, err)
				}
				if !strings.Contains(out.String(), "127.0.0.1:"+bridgePort+"/healthz") {
					t.Errorf("health did not say what answered: %q", &out)
				}
				return
			}
			if err == nil {
				t.Fatalf("health at HTTP_ADDR=%q succeeded (%q), want an error saying %q", tc.httpAddr, &out, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "HTTP_ADDR") || strings.Contains(msg, "\n") || strings.Contains(msg, "Get \"") {
				t.Errorf("error %q: want one line naming HTTP_ADDR and saying %q", msg, tc.want)
			}
		})
	}
}

func TestHealthHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"health", arg}, &out, &out); err != nil {
			t.Errorf("health %s: %v, want the usage and exit 0", arg, err)
		}
		if !strings.Contains(out.String(), "Usage: bilibridge health") {
			t.Errorf("health %s printed %q", arg, &out)
		}
	}
}
