package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/team"
)

// DemoOptions configures Demo.
type DemoOptions struct {
	Out   io.Writer // tail-style event lines
	Log   io.Writer // the bridge's log (io.Discard to hide it)
	Every time.Duration
	// HTTPAddr serves the inbox, the API and metrics; when it is taken, a
	// free port is used instead. Empty: DefaultDemoHTTPAddr.
	HTTPAddr string
	// Started, when set, is called with the running bridge, the inbox's
	// address and the demo member's password.
	Started func(b *Bridge, url, password string)
}

// DefaultDemoHTTPAddr is where the demo serves the inbox by default.
const DefaultDemoHTTPAddr = "127.0.0.1:8080"

// DemoMember is the team member the demo signs in as.
const DemoMember = "demo"

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
	cfg.NATSListen, cfg.HTTPAddr = "off", opts.HTTPAddr
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultDemoHTTPAddr
	}
	if ln, err := net.Listen("tcp", cfg.HTTPAddr); err != nil {
		cfg.HTTPAddr = "127.0.0.1:0" // taken: any free port will do
	} else {
		ln.Close()
	}
	password := team.GeneratePassword()
	return Run(ctx, Options{
		Config:   &cfg,
		Accounts: []config.Login{{Credentials: bilibili.Credentials{SESSDATA: acct.SESSDATA, BiliJct: acct.BiliJct, DedeUserID: fmt.Sprint(acct.UID)}}},
		Logger:   slog.New(slog.NewTextHandler(opts.Log, nil)),
		Started: func(a *Bridge) {
			token := ""
			err := a.Members.Add(ctx, team.Member{Name: DemoMember, Role: team.RoleAdmin}, password)
			if err == nil {
				token, err = a.Members.NewToken(ctx, DemoMember)
			}
			if err != nil {
				fmt.Fprintln(opts.Out, "demo member:", err)
			}
			url := "http://" + a.HTTPAddr
			fmt.Fprintf(opts.Out, "bilibridge demo: a fake Bilibili account %d gets a message every %s.\n"+
				"  The team inbox: %s — sign in as %q with the password %s\n"+
				"  The API (routes: %s/api/v1/openapi.json):\n"+
				"    curl -H 'Authorization: Bearer %s' %s/api/v1/conversations\n"+
				"Each line below is an event the bridge published on NATS. Ctrl-C stops; nothing is kept.\n",
				acct.UID, opts.Every, url, DemoMember, password, url, token, url)
			if opts.Started != nil {
				opts.Started(a, url, password)
			}
			go func() {
				if err := Tail(ctx, a.Conn.NC, a.Subjects.All(), opts.Out); err != nil {
					fmt.Fprintln(opts.Out, "tail:", err)
				}
			}()
			go fake.Traffic(ctx, acct.UID, opts.Every, nil)
		},
	})
}
