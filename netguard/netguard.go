// Package netguard makes HTTP clients for URLs that come from outside:
// an image_url in a send command, a picture in a Bilibili message. Such a
// client connects only to public addresses, so that a URL cannot make the
// bridge read from the network it runs in (cloud metadata endpoints,
// the NATS monitoring port, a router's admin page).
//
// The check runs on the address actually dialled, after DNS, so a name
// that resolves inside cannot get around it; and the client uses no
// proxy, because through a proxy the dialled address is the proxy's.
package netguard

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"syscall"
	"time"
)

// ErrPrivateAddress is the error (wrapped in the client's *url.Error) of
// a connection refused because its address is not public.
var ErrPrivateAddress = errors.New("refusing to connect to a private or local address")

// Options shape a client.
type Options struct {
	// AllowPrivate lets the client reach loopback and private addresses
	// (tests, or a trusted LAN image server).
	AllowPrivate bool
	// AllowAddrs are "ip:port" addresses reachable although not public:
	// the bridge's own HTTP server, for example.
	AllowAddrs []string
	// Timeout bounds a whole request, body included; zero means none
	// (the caller's context bounds it).
	Timeout time.Duration
	// MaxRedirects bounds the redirects followed; default 5.
	MaxRedirects int
}

// Client returns an HTTP client that dials only public addresses (or
// what opts allows) and never uses a proxy.
func Client(opts Options) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			if slices.Contains(opts.AllowAddrs, address) {
				return nil
			}
			return CheckAddr(address)
		}
	}
	maxRedirects := opts.MaxRedirects
	if maxRedirects <= 0 {
		maxRedirects = 5
	}
	tr := &http.Transport{
		Proxy:                 nil, // the check must see the target, not a proxy
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errors.New("redirect to a non-http URL")
			}
			return nil
		},
	}
}

// CheckAddr returns ErrPrivateAddress unless address ("ip:port") is a
// public unicast address.
func CheckAddr(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return ErrPrivateAddress
	}
	if v4 := ip.To4(); v4 != nil {
		// 100.64.0.0/10 (carrier-grade NAT) is not "private" to net.IP;
		// 0.0.0.0/8 reaches this host on Linux.
		if (v4[0] == 100 && v4[1]&0xC0 == 64) || v4[0] == 0 {
			return ErrPrivateAddress
		}
	} else if len(ip) == net.IPv6len && ip[0] == 0x00 && ip[1] == 0x64 && ip[2] == 0xff && ip[3] == 0x9b {
		// 64:ff9b::/96 (NAT64) can map to any IPv4 address, inside too.
		return ErrPrivateAddress
	}
	return nil
}
