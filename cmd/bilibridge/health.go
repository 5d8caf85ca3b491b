package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/bilibridge/bilibridge/config"
)

// healthTimeout bounds the probe: a bridge that hangs must fail the check
// rather than hang it.
const healthTimeout = 5 * time.Second

const healthUsage = `Usage: bilibridge health
  exit 0 when the bridge at HTTP_ADDR answers GET /healthz with 200, else say why and exit 1
  (for Docker's HEALTHCHECK: the image has no shell, curl or wget). HTTP_ADDR on every
  interface (0.0.0.0, ::) is probed on 127.0.0.1.
`

// health probes the running bridge's /healthz, so that a container can
// check itself with the binary it already has.
func health(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), healthUsage) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected argument %q; it probes HTTP_ADDR from the environment", fs.Arg(0))
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	url, err := healthURL(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	// No proxy: the bridge is on this host, and HTTP_PROXY in a
	// container's environment must not take the probe elsewhere.
	client := &http.Client{Timeout: healthTimeout, Transport: &http.Transport{}}
	if err := probe(ctx, client, url); err != nil {
		return fmt.Errorf("the bridge at HTTP_ADDR=%s is not healthy: %w", cfg.HTTPAddr, err)
	}
	fmt.Fprintf(stdout, "healthy: %s answered 200\n", url)
	return nil
}

// healthURL is the address of /healthz for a bridge listening on addr. A
// listener on every interface is reached on the loopback.
func healthURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("HTTP_ADDR is empty, so the bridge serves no /healthz: set HTTP_ADDR (as the bridge has it) to probe it")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("HTTP_ADDR=%q: want host:port, such as 127.0.0.1:8080", addr)
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// probe GETs url and wants 200.
func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return plainNetError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s answered %s", url, resp.Status)
	}
	return nil
}

// plainNetError is the failure of a request to the bridge without the
// request repeated (the caller names the address): "nothing listens
// there" rather than `Get "http://…": dial tcp …: connect: connection
// refused`.
func plainNetError(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("nothing listens there")
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return errors.New("no answer in time")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}
