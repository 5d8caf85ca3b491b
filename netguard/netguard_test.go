package netguard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/netguard"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"1.1.1.1:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"127.0.0.1:80", false},
		{"10.1.2.3:80", false},
		{"172.16.0.1:80", false},
		{"192.168.1.1:80", false},
		{"169.254.169.254:80", false}, // cloud metadata
		{"100.64.0.1:80", false},      // carrier-grade NAT
		{"0.0.0.0:80", false},
		{"0.1.2.3:80", false},
		{"[::1]:80", false},
		{"[::ffff:127.0.0.1]:80", false},
		{"[fd00::1]:80", false},
		{"[fe80::1]:80", false},
		{"[64:ff9b::a9fe:a9fe]:80", false}, // NAT64 of 169.254.169.254
		{"224.0.0.1:80", false},
	} {
		err := netguard.CheckAddr(tc.addr)
		if got := err == nil; got != tc.public {
			t.Errorf("CheckAddr(%s) = %v, want public=%v", tc.addr, err, tc.public)
		}
	}
}

// A proxy from the environment must not carry a request past the check:
// the dialled address would be the proxy's, and the proxy would fetch
// the private target on the bridge's behalf.
func TestClientIgnoresTheEnvironmentProxy(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		w.Write([]byte("metadata secrets"))
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	proxyAddr := strings.TrimPrefix(proxy.URL, "http://")

	c := netguard.Client(netguard.Options{AllowAddrs: []string{proxyAddr}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://169.254.169.254/latest/meta-data/", nil)
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request to the metadata address succeeded (HTTP %d)", resp.StatusCode)
	}
	if !errors.Is(err, netguard.ErrPrivateAddress) {
		t.Fatalf("err = %v, want ErrPrivateAddress", err)
	}
	if n := proxied.Load(); n != 0 {
		t.Fatalf("the proxy received %d requests", n)
	}
}

func TestClientAllowsListedAndPrivateWhenAsked(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		name string
		opts netguard.Options
		ok   bool
	}{
		{"default refuses loopback", netguard.Options{}, false},
		{"listed address", netguard.Options{AllowAddrs: []string{addr}}, true},
		{"private allowed", netguard.Options{AllowPrivate: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := netguard.Client(tc.opts).Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, netguard.ErrPrivateAddress) {
				t.Fatalf("err = %v, want ErrPrivateAddress", err)
			}
		})
	}
}
