// Command bilifake serves the bilitest fake Bilibili with a seeded demo
// account, for trying bilibridge without a real account:
//
//	go run ./cmd/bilifake -addr 127.0.0.1:8081 -traffic 5s
//
// It prints the environment variables that point bilibridge at it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bilifake:", err)
		os.Exit(1)
	}
}

// options are bilifake's flags.
type options struct {
	addr      string
	traffic   time.Duration
	verbose   bool
	autoLogin time.Duration
	anyUA     bool
}

// newFlags defines the flags on a set of their own, so that tests can
// parse them and read their help. A backquoted word in a usage text would
// become the flag's value name in the help, so the texts have none.
func newFlags(stderr io.Writer) (*flag.FlagSet, *options) {
	var o options
	fs := flag.NewFlagSet("bilifake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: bilifake [flags]\n  a fake Bilibili with a demo account, for trying bilibridge without an account")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8081", "listen address")
	fs.DurationVar(&o.traffic, "traffic", 0, "inject a random message from a random talker this often (0 = off)")
	fs.BoolVar(&o.verbose, "v", false, "log every request")
	fs.DurationVar(&o.autoLogin, "auto-login", 0, "scan and confirm every QR login as the demo account after this long (0 = never), to try bilibridge login without a phone")
	fs.BoolVar(&o.anyUA, "any-ua", false, "accept any User-Agent (by default curl/python/Go-http-client get code -412)")
	return fs, &o
}

// run serves the fake until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := start(args, stdout, stderr)
	if err != nil {
		return err
	}
	return f.serve(ctx)
}

// fake is a listening bilifake.
type fake struct {
	opts *options
	s    *bilitest.Server
	acc  bilitest.Account
	ln   net.Listener
	base string // http://host:port
	log  *log.Logger
}

// start parses the flags, listens and says how to point bilibridge here.
func start(args []string, stdout, stderr io.Writer) (*fake, error) {
	fs, opts := newFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; bilifake takes flags only (-h)", fs.Arg(0))
	}
	f := &fake{opts: opts, s: bilitest.New(), log: log.New(stderr, "", log.LstdFlags)}
	f.acc = f.s.SeedDemo()
	if opts.verbose {
		f.s.SetLogf(f.log.Printf)
	}
	if opts.anyUA {
		f.s.SetUserAgentCheck(false)
	}
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %s: %w", opts.addr, err)
	}
	f.ln, f.base = ln, "http://"+ln.Addr().String()
	f.printUse(stdout)
	return f, nil
}

// printUse prints the export lines for bilibridge. With -auto-login the
// point is to try `bilibridge login`, so it leaves out the demo cookies:
// exported, BILI_SESSDATA and BILI_JCT would override the very login it
// demonstrates. DATA_DIR keeps the fake's login and store away from a
// real one in ./data.
func (f *fake) printUse(w io.Writer) {
	fmt.Fprintf(w, "bilifake: fake Bilibili listening on %s\n", f.base)
	fmt.Fprintf(w, "bilifake: demo account %q uid %d; use:\n", f.acc.Name, f.acc.UID)
	fmt.Fprintf(w, "export BILI_API_URL=%s BILI_MAIN_API_URL=%[1]s BILI_PASSPORT_URL=%[1]s BILI_WWW_URL=%[1]s DATA_DIR=./data-bilifake\n", f.base)
	if f.opts.autoLogin > 0 {
		fmt.Fprintf(w, "bilifake: QR logins are confirmed as the demo account after %s: run bilibridge login, then bilibridge run (unset BILI_SESSDATA and BILI_JCT if you exported them: they would override the login)\n", f.opts.autoLogin)
	} else {
		fmt.Fprintf(w, "export BILI_UID=%d BILI_SESSDATA='%s' BILI_JCT=%s\n", f.acc.UID, f.acc.SESSDATA, f.acc.BiliJct)
	}
	if f.opts.traffic > 0 {
		fmt.Fprintf(w, "bilifake: injecting a random message every %s\n", f.opts.traffic)
	}
}

// serve answers until ctx ends, with the traffic and the auto-login the
// flags asked for.
func (f *fake) serve(ctx context.Context) error {
	if f.opts.traffic > 0 {
		go f.s.Traffic(ctx, f.acc.UID, f.opts.traffic, func(m bilitest.Message, d bilitest.Delivered) {
			f.log.Printf("bilifake: delivered msg_type %d in %d/%d msg_key %d seqno %d", m.MsgType, m.SessionType, m.TalkerID, d.MsgKey, d.Seqno)
		})
	}
	if f.opts.autoLogin > 0 {
		go f.confirmLogins(ctx)
	}
	srv := &http.Server{Handler: f.s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(f.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// confirmLogins plays the phone: each new QR code is scanned after half
// of -auto-login and confirmed as the demo account after all of it.
func (f *fake) confirmLogins(ctx context.Context) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		for _, k := range f.s.QRKeys() {
			if !seen[k] {
				seen[k] = true
				time.AfterFunc(f.opts.autoLogin/2, func() { f.s.ScanQR(k) })
				time.AfterFunc(f.opts.autoLogin, func() { f.s.ConfirmQR(k, f.acc.UID) })
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
