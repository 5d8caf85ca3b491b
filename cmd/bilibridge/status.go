package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/config"
)

const statusUsage = `Usage: bilibridge status [--token TOKEN]
  print what a running bridge is doing: each account (login valid? last good poll), each sink
  (state, backlog, last delivery, dead letters) and the sender (queue, last outcome). It asks the
  bridge's API at HTTP_ADDR with API_TOKEN (or --token, a member's personal token).
`

// statusCommand runs `bilibridge status`.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage) }
	token := fs.String("token", "", "an API token (default: API_TOKEN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	c, err := newAPIClient(cfg, *token)
	if err != nil {
		return err
	}
	var st bridge.Status
	if err := c.call(ctx, "GET", "/api/v1/status", &st); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	fmt.Fprintln(stdout, st.Text(time.Now()))
	if len(st.Accounts) == 0 {
		return errors.New("status: the bridge serves no account yet")
	}
	return nil
}
