package bridge

import (
	"errors"
	"fmt"
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
		if errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("%w (is `bilibridge run` running?)", bus.ConnectError(servers, err))
		}
		return nil, bus.ConnectError(servers, err)
	}
	return nc, nil
}
