package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/config"
)

// DemoOptions configures Demo.
type DemoOptions struct {
	Out   io.Writer // tail-style event lines
	Log   io.Writer // the bridge's log (io.Discard to hide it)
	Every time.Duration
}

// Demo runs the whole pipeline against an in-process fake Bilibili that
// receives a message every opts.Every, and prints every event as `tail`
// does, until ctx ends. Nothing leaves the machine and nothing is kept.
func Demo(ctx context.Context, opts DemoOptions) error {
	if opts.Every <= 0 {
		opts.Every = 2 * time.Second
	}
	fake := bilitest.NewServer()
	defer fake.Close()
	acct := fake.SeedDemo()
	dir, err := os.MkdirTemp("", "bilibridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.APIURL, cfg.MainAPIURL, cfg.PassportURL, cfg.WWWURL = fake.URL(), fake.URL(), fake.URL(), fake.URL()
	// The fake has no risk control to upset.
	cfg.PollInterval, cfg.PollUnsafe = time.Second, true
	cfg.NATSListen, cfg.HTTPAddr = "off", ""
	fmt.Fprintf(opts.Out, "bilibridge demo: a fake Bilibili account %d gets a message every %s; each line below is an event the bridge published on NATS. Ctrl-C stops.\n", acct.UID, opts.Every)
	return Run(ctx, Options{
		Config:   &cfg,
		Accounts: []config.Login{{Credentials: bilibili.Credentials{SESSDATA: acct.SESSDATA, BiliJct: acct.BiliJct, DedeUserID: fmt.Sprint(acct.UID)}}},
		Logger:   slog.New(slog.NewTextHandler(opts.Log, nil)),
		Started: func(a *Bridge) {
			go func() {
				if err := Tail(ctx, a.Conn.NC, a.Subjects.All(), opts.Out); err != nil {
					fmt.Fprintln(opts.Out, "tail:", err)
				}
			}()
			go fake.Traffic(ctx, acct.UID, opts.Every, nil)
		},
	})
}
