// Command bilibridge bridges a Bilibili account's private messages to NATS
// JetStream, Telegram, Discord and webhooks. Run `bilibridge help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilibridge/bilibridge/app"
	"github.com/bilibridge/bilibridge/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `bilibridge turns a Bilibili account's private messages into a team inbox.

Usage:
  bilibridge [run]              poll the account and publish its DMs (the default)
  bilibridge tail [filter]      print live events, one line each (filter default "%s.>")
  bilibridge demo [-for 1m]     the whole pipeline against a built-in fake Bilibili
  bilibridge version            print the version
  bilibridge help               this text

Configuration is read from the environment:

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bilibridge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runBridge(ctx, stderr)
	case "tail":
		return tail(ctx, args, stdout)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "bilibridge", buildVersion())
		return nil
	case "help", "--help", "-h":
		fmt.Fprintf(stdout, usage, "bili")
		return config.Usage(stdout)
	}
	return fmt.Errorf("unknown command %q; run `bilibridge help`", cmd)
}

func runBridge(ctx context.Context, stderr io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	creds, err := cfg.Credentials()
	if errors.Is(err, config.ErrNoCredentials) {
		return errors.New("no Bilibili login found: set BILI_SESSDATA and BILI_JCT (or log in to write " + cfg.CredentialsFile + "), or try `bilibridge demo` to see the bridge work without an account")
	}
	if err != nil {
		return err
	}
	return app.Run(ctx, app.Options{Config: cfg, Credentials: creds, Logger: cfg.Logger(stderr)})
}

func tail(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	filter := cfg.Prefix + ".>"
	if len(args) > 0 {
		filter = args[0]
	}
	url := cfg.NATSURL
	if url == "" {
		if cfg.NATSListen == "off" {
			return errors.New("the embedded NATS of a running bridge is in-process only (NATS_LISTEN=off); set NATS_LISTEN or NATS_URL")
		}
		url = "nats://" + cfg.NATSListen
	}
	opts := []nats.Option{nats.Name("bilibridge tail"), nats.Timeout(5 * time.Second)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connecting to %s (is `bilibridge run` running?): %w", url, err)
	}
	defer nc.Close()
	return app.Tail(ctx, nc, filter, stdout)
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("for", 0, "stop after this long (default: until Ctrl-C)")
	every := fs.Duration("every", 2*time.Second, "how often the fake Bilibili receives a message")
	verbose := fs.Bool("v", false, "show the bridge's log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	logTo := io.Discard
	if *verbose {
		logTo = stderr
	}
	return app.Demo(ctx, app.DemoOptions{Out: stdout, Log: logTo, Every: *every})
}

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return strings.TrimSpace(v)
}
