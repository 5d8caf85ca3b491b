package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
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
// receives a message every opts.Every and answers every third one through
// the real send path, prints every event as `tail` does, serves the inbox
// and the API, and on Ctrl-C sums up and says what to try next. Nothing
// leaves the machine and nothing is kept.
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
	// `bilibridge tail` in another terminal reaches the demo's NATS at the
	// default address when it is free.
	cfg.NATSListen, cfg.HTTPAddr = freeOr(config.Defaults().NATSListen), freeOr(opts.HTTPAddr)
	if opts.HTTPAddr == "" {
		cfg.HTTPAddr = freeOr(DefaultDemoHTTPAddr)
	}
	password := team.GeneratePassword()
	var tally demoTally
	err = Run(ctx, Options{
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
			tailCmd := "bilibridge tail"
			if nats := a.Conn.ClientURL(); nats != "" && !strings.HasSuffix(nats, ":4222") {
				tailCmd = "NATS_LISTEN=" + strings.TrimPrefix(nats, "nats://") + " bilibridge tail"
			}
			fmt.Fprintf(opts.Out, "bilibridge demo: a fake Bilibili account %d gets a message every %s, and answers every third one itself.\n"+
				"  The team inbox: %s — sign in as %q with the password %s\n"+
				"  The API (routes: %s/api/v1/openapi.json), metrics at %s/metrics:\n"+
				"    curl -H 'Authorization: Bearer %s' %s/api/v1/conversations\n"+
				"  From another terminal: %s\n"+
				"Each line below is an event on NATS (← in, → out). Ctrl-C stops; nothing is kept.\n",
				acct.UID, opts.Every, url, DemoMember, password, url, url, token, url, tailCmd)
			if opts.Started != nil {
				opts.Started(a, url, password)
			}
			go func() {
				if err := Tail(ctx, a.Conn.NC, a.Subjects.All(), opts.Out); err != nil {
					fmt.Fprintln(opts.Out, "tail:", err)
				}
			}()
			go a.demoReplies(ctx, &tally, opts.Out)
			go fake.Traffic(ctx, acct.UID, opts.Every, nil)
		},
	})
	fmt.Fprintf(opts.Out, "\nDemo over: %d messages came in, %d replies went out through the sender (%d failed).\n"+
		"Next:\n"+
		"  bilibridge login          log in to your own Bilibili account (scan the QR code with the app)\n"+
		"  bilibridge run            run the bridge; open http://127.0.0.1:8080 for the team inbox\n"+
		"  bilibridge member add ana --role admin    the first member of the team\n"+
		"  bilibridge tail           watch the events from another terminal\n"+
		"  bilibridge help           every setting (webhooks, Telegram, Discord, …)\n",
		tally.in.Load(), tally.sent.Load(), tally.failed.Load())
	return err
}

// demoTally counts what the demo showed.
type demoTally struct {
	in, toPeople, sent, failed atomic.Int64
}

// demoReplies answers every third incoming message through the outbox, as
// a team member would, and counts what it sees.
func (b *Bridge) demoReplies(ctx context.Context, tally *demoTally, out io.Writer) {
	live, stop := b.Projection.Subscribe(1024)
	defer func() { stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-live:
			if !ok {
				live, stop = b.Projection.Subscribe(1024)
				continue
			}
			switch e.Event.Type {
			case events.TypeSendSucceeded:
				tally.sent.Add(1)
			case events.TypeSendFailed:
				tally.failed.Add(1)
			case events.TypeMessage:
				var d events.MessageData
				if e.Event.DecodeData(&d) != nil || d.Message.Direction != events.DirectionIn {
					continue
				}
				// Every incoming message counts; replies go to people only
				// (not to fan groups or system accounts).
				if tally.in.Add(1); d.Conversation.Kind != events.ConversationUser {
					continue
				}
				if tally.toPeople.Add(1)%3 != 0 {
					continue
				}
				_, err := b.Outbox.Submit(ctx, send.Request{AccountUID: d.AccountUID, SessionType: d.Conversation.SessionType,
					TalkerID: d.Conversation.TalkerID, Command: events.SendCommand{
						Text:   "谢谢你的私信！(an automatic reply from the bilibridge demo)",
						Origin: &events.Origin{Platform: "demo"}}}, 0)
				if err != nil && ctx.Err() == nil {
					fmt.Fprintln(out, "demo reply:", err)
				}
			}
		}
	}
}

// freeOr is addr when nothing listens there, else a free port on
// 127.0.0.1.
func freeOr(addr string) string {
	if addr == "" || addr == "off" {
		return addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	ln.Close()
	return addr
}
