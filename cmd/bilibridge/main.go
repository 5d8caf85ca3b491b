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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/bench"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `bilibridge turns a Bilibili account's private messages into a team inbox.

Usage:
  bilibridge [run]              poll the account and publish its DMs (the default)
  bilibridge login [--check]    log in by scanning a QR code with the Bilibili app (login -h)
  bilibridge tail [filter]      print live events, one line each (filter default "%s.*.>")
  bilibridge demo [-for 1m]     the whole pipeline against a built-in fake Bilibili, with the inbox
  bilibridge bench [flags]      measure the whole pipeline against the fake (docs/benchmarks.md)
  bilibridge send --to ID [--group] --text "…" | --image URL [--wait]
                                send a DM through a running bridge's outbox
  bilibridge member …           the team: add, list, remove, password, token (member -h)
  bilibridge dead list|replay   the events sinks gave up on, and sending them again (dead -h)
  bilibridge status             what a running bridge is doing: accounts, sinks, sender
  bilibridge health             exit 0 when the bridge at HTTP_ADDR answers /healthz (Docker's check)
  bilibridge version            print the version
  bilibridge help               this text

Configuration is read from the environment:

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, errUsage) {
		os.Exit(2) // as the flag package does: it said what was wrong
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bilibridge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the usage was asked for, and printed
	}
	return err
}

// errUsage is a command line the flag package refused: it has printed
// what was wrong and the usage, so main only exits.
var errUsage = errors.New("bad command line")

// parseFlags parses args into fs (whose output is where its errors and
// usage go).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return errUsage
	}
	return err
}

// simpleUsage is the help of the subcommands without flags.
var simpleUsage = map[string]string{
	"run":  "Usage: bilibridge [run]\n  poll the Bilibili account(s), publish their DMs on NATS, deliver them to the sinks and serve\n  the inbox, the API and /metrics at HTTP_ADDR. Configuration: the environment (bilibridge help).\n",
	"tail": "Usage: bilibridge tail [filter]\n  print the events of a running bridge as they come, one line each (filter default \"bili.*.>\",\n  e.g. \"bili.*.msg.>\"). It reaches the bridge at NATS_URL, or its embedded server at NATS_LISTEN.\n",
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if u, ok := simpleUsage[cmd]; ok && len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, u)
		return nil
	}
	switch cmd {
	case "run":
		if len(args) > 0 {
			return fmt.Errorf("run: unexpected argument %q; configuration comes from the environment (bilibridge help)", args[0])
		}
		return runBridge(ctx, stderr)
	case "tail":
		return tail(ctx, args, stdout)
	case "login":
		return login(ctx, args, stdout, stderr)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "bench":
		return benchCmd(ctx, args, stdout, stderr)
	case "send":
		return sendCommand(ctx, args, stdout, stderr)
	case "member":
		return memberCommand(ctx, args, os.Stdin, stdout, stderr)
	case "dead":
		return deadCommand(ctx, args, stdout, stderr)
	case "status":
		return statusCommand(ctx, args, stdout, stderr)
	case "health":
		return health(ctx, args, stdout, stderr)
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
	log := cfg.Logger(stderr)
	// Without a login the bridge stays up and waits for one (a container
	// would otherwise restart in a loop before anyone could log in).
	logins, err := bridge.WaitForLogin(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	err = bridge.Run(ctx, bridge.Options{Config: cfg, Accounts: logins, Logger: log})
	if errors.Is(err, bridge.ErrLoginRejected) {
		return bridge.Idle(ctx, cfg, log, err)
	}
	return err
}

func tail(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	filter := events.Subjects{Prefix: cfg.Prefix}.All()
	if len(args) > 0 {
		filter = args[0]
	}
	nc, err := bridge.Dial(cfg, "bilibridge tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	return bridge.Tail(ctx, nc, filter, stdout)
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("for", 0, "stop after this long (default: until Ctrl-C)")
	every := fs.Duration("every", 2*time.Second, "how often the fake Bilibili receives a message")
	verbose := fs.Bool("v", false, "show the bridge's log")
	httpAddr := fs.String("http", bridge.DefaultDemoHTTPAddr, "where to serve the team inbox and the API (a free port when taken)")
	if err := parseFlags(fs, args); err != nil {
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
	return bridge.Demo(ctx, bridge.DemoOptions{Out: stdout, Log: logTo, Every: *every, HTTPAddr: *httpAddr})
}

// benchCmd runs the whole-pipeline benchmark: this executable's `run` as
// the bridge, against a built-in fake Bilibili and webhook receiver.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := bench.Flags(fs)
	verbose := fs.Bool("v", false, "show the bridge's log")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts.Progress = stderr
	if *verbose {
		opts.Log = stderr
	}
	_, err := bench.Run(ctx, *opts, stdout)
	return err
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

// send queues a DM on the outbox of a running bridge (the same path as
// POST /api/v1/messages) and prints the outcome in one line. A failed send
// is an error, so the exit status is non-zero.
func sendCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "the user's mid (or the fan group's id with --group)")
	group := fs.Bool("group", false, "send to a fan group")
	text := fs.String("text", "", "the text to send (long text is split)")
	image := fs.String("image", "", "an http(s) URL of a JPEG, PNG or GIF to send")
	wait := fs.Bool("wait", false, "wait for the result")
	timeout := fs.Duration("timeout", api.DefaultSendWait, "how long --wait waits")
	id := fs.String("id", "", "idempotency key (command_id); default: a new UUIDv7")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("send: unexpected argument %q (quote the text: --text \"…\")", fs.Arg(0))
	}
	talker, err := strconv.ParseUint(strings.TrimSpace(*to), 10, 64)
	if err != nil || talker == 0 {
		return errors.New("send: --to must be the talker's numeric id")
	}
	// Checked here too, to name the flags (the outbox names the API's
	// fields, text and image_url).
	if *text == "" && *image == "" {
		return errors.New("send: give --text, --image or both")
	}
	if *image != "" && send.CheckImageURL(*image) != nil {
		return errors.New("send: --image must be an absolute http or https URL")
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	uid := cfg.UID
	if uid == 0 {
		if cr, err := cfg.Credentials(); err == nil {
			uid = cr.UID()
		}
	}
	if uid == 0 {
		return errors.New("send: the account's uid is unknown; set BILI_UID (or log in so the credentials file holds DedeUserID)")
	}
	nc, err := bridge.Dial(cfg, "bilibridge send")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	records, err := js.KeyValue(ctx, bus.BucketRecords)
	if err != nil {
		return fmt.Errorf("send: the bridge's KV bucket %s is missing (is `bilibridge run` up to date and running?): %w", bus.BucketRecords, err)
	}
	ob := &send.Outbox{NC: nc, JS: js, Records: records, Subjects: events.Subjects{Prefix: cfg.Prefix}, Accounts: []int64{uid}}
	st := 1
	if *group {
		st = 2
	}
	req := send.Request{SessionType: st, TalkerID: talker, Command: events.SendCommand{
		CommandID: *id, Text: *text, ImageURL: *image, Origin: &events.Origin{Platform: "cli"}}}
	var d time.Duration
	if *wait {
		d = *timeout
	}
	out, err := ob.Submit(ctx, req, d)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	switch {
	case out.Result == nil && *wait:
		fmt.Fprintf(stdout, "queued %s (no result within %s; it is still in the outbox)\n", out.CommandID, *timeout)
	case out.Result == nil:
		fmt.Fprintf(stdout, "queued %s\n", out.CommandID)
	case out.Succeeded:
		fmt.Fprintf(stdout, "sent %s msg_key %d\n", out.CommandID, out.Result.MsgKey)
	default:
		return fmt.Errorf("send %s failed: %s (code %d)", out.CommandID, out.Result.Error, out.Result.ErrorCode)
	}
	return nil
}

// login runs the web QR login and saves the credentials file, or with
// --check says whether the saved logins still work.
func login(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "only check whether the saved login still works")
	png := fs.String("png", "", "also write the QR code to this PNG file (default: qr.png in DATA_DIR)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	client := bilibili.New(bilibili.Config{Endpoints: cfg.Endpoints()})
	if *check {
		return checkLogins(ctx, cfg, client, stdout, stderr)
	}
	// The file's name depends on the uid, known only after the scan; its
	// directory is known now, so check it before anyone scans.
	if err := account.CheckDir(filepath.Dir(cfg.CredentialsFile)); err != nil {
		return credentialsDirError(cfg, err)
	}
	if cfg.CredentialsFromEnv() {
		fmt.Fprintln(stderr, "Note: BILI_SESSDATA/BILI_JCT are set in the environment, and they override the credentials file this login writes: unset them (under docker compose, remove them from .env) so that the bridge uses this login.")
	}
	if *png == "" {
		*png = filepath.Join(cfg.DataDir, "qr.png")
	}
	creds, err := account.Login(ctx, client, account.LoginOptions{Show: func(step account.LoginStep, code *bilibili.QRCode) {
		switch step {
		case account.StepShowCode:
			fmt.Fprintln(stdout, "Scan this QR code with the Bilibili app (我的 → 扫一扫):")
			account.WriteTerminalQR(stdout, code.URL)
			if err := os.MkdirAll(filepath.Dir(*png), 0o700); err == nil {
				if err := account.WriteQRPNG(*png, code.URL); err == nil {
					fmt.Fprintf(stdout, "(The same code is in %s if your terminal cannot show it.)\nWaiting for the scan…\n", *png)
				}
			}
		case account.StepScanned:
			fmt.Fprintln(stdout, "Scanned. Confirm the login on your phone…")
		case account.StepExpired:
			fmt.Fprintln(stdout, "The code expired.")
		case account.StepConfirmed:
			fmt.Fprintln(stdout, "Confirmed.")
		}
	}})
	os.Remove(*png)
	if err != nil {
		return err
	}
	file := cfg.LoginFile(creds.UID())
	if err := account.WriteCredentials(file, creds); err != nil {
		return err
	}
	client.SetCredentials(creds)
	nav, err := client.Nav(ctx)
	if err != nil {
		return fmt.Errorf("logged in, but nav failed: %w", err)
	}
	if cfg.CredentialsFromEnv() {
		fmt.Fprintf(stdout, "Logged in as %s (uid %d). Credentials saved to %s (mode 0600), but BILI_SESSDATA/BILI_JCT in the environment override them: unset them, then `bilibridge run` uses this login.\n", nav.Uname, nav.Mid, file)
		return nil
	}
	fmt.Fprintf(stdout, "Logged in as %s (uid %d). Credentials saved to %s (mode 0600); `bilibridge run` uses them, and a running bridge picks them up.\n", nav.Uname, nav.Mid, file)
	return nil
}

// credentialsDirError says that the login could not be saved, naming the
// variable that chose the place: BILI_CREDENTIALS_FILE when it is set to
// a place of its own, else DATA_DIR.
func credentialsDirError(cfg *config.Config, err error) error {
	dir := filepath.Dir(cfg.CredentialsFile)
	if cfg.CredentialsFile != filepath.Join(cfg.DataDir, "credentials.json") {
		return fmt.Errorf("BILI_CREDENTIALS_FILE=%s: the login cannot be saved in %s (%v): make that directory writable for this user, or set BILI_CREDENTIALS_FILE to a file in one that is", cfg.CredentialsFile, dir, err)
	}
	return fmt.Errorf("DATA_DIR=%s: the login cannot be saved in %s (%v): make that directory writable for this user, or set DATA_DIR to one that is", cfg.DataDir, dir, err)
}

// checkLogins asks Bilibili whether each saved login still works, and
// says where each came from (the environment or which file) and whose it
// is, so that a surprise (the environment overriding a fresh login) shows.
func checkLogins(ctx context.Context, cfg *config.Config, client *bilibili.Client, stdout, stderr io.Writer) error {
	logins, err := cfg.Logins()
	if err != nil {
		return fmt.Errorf("%w: run `bilibridge login`", err)
	}
	if _, err := os.Stat(cfg.CredentialsFile); err == nil && cfg.CredentialsFromEnv() {
		fmt.Fprintf(stderr, "Note: %s is not used while BILI_SESSDATA/BILI_JCT are set in the environment; unset them to use it.\n", cfg.CredentialsFile)
	}
	var failed []error
	for _, l := range logins {
		from, fix := l.File, "run `bilibridge login`"
		if l.File == "" {
			from, fix = "the environment (BILI_SESSDATA)", "set fresh BILI_SESSDATA and BILI_JCT, or unset them and run `bilibridge login`"
		}
		client.SetCredentials(l.Credentials)
		nav, err := client.Nav(ctx)
		var bad error
		switch {
		case err == nil && nav.IsLogin:
			fmt.Fprintf(stdout, "The login from %s works: %s (uid %d).\n", from, nav.Uname, nav.Mid)
			continue
		case err != nil && !bilibili.IsLoginExpired(err):
			// Not an answer about the login: a new login would not help.
			bad = fmt.Errorf("the login of %s from %s could not be checked (%v): try again once Bilibili answers", accountText(l.Credentials.UID()), from, err)
		case err == nil:
			bad = fmt.Errorf("the login of %s from %s no longer works (Bilibili says it is not logged in): %s", accountText(l.Credentials.UID()), from, fix)
		default:
			bad = fmt.Errorf("the login of %s from %s no longer works (%v): %s", accountText(l.Credentials.UID()), from, err, fix)
		}
		failed = append(failed, bad)
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(logins) == 1:
		return failed[0] // printed once, by main
	}
	// Several accounts: each failure on its line, beside the ones that
	// work, and a count as the error.
	for _, bad := range failed {
		fmt.Fprintln(stdout, bad)
	}
	return fmt.Errorf("%d of %d logins do not work (above)", len(failed), len(logins))
}

// accountText names an account by uid, which a login from the
// environment without BILI_UID does not know.
func accountText(uid int64) string {
	if uid == 0 {
		return "an unknown account"
	}
	return fmt.Sprintf("account %d", uid)
}
