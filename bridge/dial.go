package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
)

// Dial connects, as the client called name, to the NATS a running bridge
// uses: NATS_URL, or the embedded server at NATS_LISTEN. It logs in with
// NATS_USER/NATS_PASSWORD, or NATS_CREDS, when set.
func Dial(cfg *config.Config, name string) (*nats.Conn, error) {
	servers := cfg.NATSURL
	if servers == "" {
		if cfg.NATSListen == "off" {
			return nil, errors.New("the embedded NATS of a running bridge is in-process only (NATS_LISTEN=off); set NATS_LISTEN or NATS_URL")
		}
		servers = "nats://" + cfg.NATSListen
	}
	opts := append([]nats.Option{nats.Name(name), nats.Timeout(5 * time.Second)}, bus.Login(cfg.NATSUser, cfg.NATSPassword, cfg.NATSCreds)...)
	nc, err := nats.Connect(servers, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s (is `bilibridge run` running?): %w", redactURLs(servers), err)
	}
	return nc, nil
}

// redactURLs hides passwords in a comma-separated server list: NATS_URL
// may carry a login (nats://user:pass@host), and errors are printed.
func redactURLs(servers string) string {
	list := strings.Split(servers, ",")
	for i, s := range list {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil {
			list[i] = u.Redacted()
		} else {
			list[i] = "(unparsable URL)"
		}
	}
	return strings.Join(list, ",")
}
