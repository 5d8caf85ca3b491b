package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/config"
)

// Dial connects, as the client called name, to the NATS a running bridge
// uses: NATS_URL, or the embedded server at NATS_LISTEN.
func Dial(cfg *config.Config, name string) (*nats.Conn, error) {
	url := cfg.NATSURL
	if url == "" {
		if cfg.NATSListen == "off" {
			return nil, errors.New("the embedded NATS of a running bridge is in-process only (NATS_LISTEN=off); set NATS_LISTEN or NATS_URL")
		}
		url = "nats://" + cfg.NATSListen
	}
	opts := []nats.Option{nats.Name(name), nats.Timeout(5 * time.Second)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s (is `bilibridge run` running?): %w", url, err)
	}
	return nc, nil
}
