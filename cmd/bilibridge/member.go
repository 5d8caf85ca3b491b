package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

const memberUsage = `Usage:
  bilibridge member add NAME [--role admin|agent] [--telegram USER_ID] [--discord USER_ID] [--password-stdin]
                                add a team member; prints a one-time password unless one is read from stdin
  bilibridge member list        list the team
  bilibridge member remove NAME remove a member and revoke their tokens
  bilibridge member password NAME [--password-stdin]
                                set a new password (generated and printed unless read from stdin)
  bilibridge member token NAME  make a personal API token (shown once)

A NAME is 1 to 32 of a-z, 0-9, '-' and '_'. --telegram and --discord are the member's user ids there:
replies and team commands they type in the chat are theirs.

The team lives in the KV bucket bili_team of the bridge's NATS: these commands reach a running bridge
through NATS_URL, or its embedded server at NATS_LISTEN. When none is running and NATS_URL is empty,
they open the embedded store in DATA_DIR themselves, so the team can be set up before the first run.
`

// memberTimeout bounds one member command: a NATS that accepts the
// connection but does not answer must not hang it.
const memberTimeout = 30 * time.Second

// errInProcessBridge is the answer when a bridge may hold the embedded
// store without a listener: nats-server does not lock its store, so a
// second server on it would corrupt it, and this command cannot reach
// the running one.
var errInProcessBridge = errors.New("the bridge seems to be running with NATS_LISTEN=off, and NATS does not lock its store against a second process: stop the bridge or give it a NATS_LISTEN address, and run this command with NATS_LISTEN set too")

// memberCommand runs `bilibridge member …`.
func memberCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("member: say what to do (add, list, remove, password or token); run `bilibridge member -h`")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("member "+sub, flag.ContinueOnError)
	var (
		role          = "agent"
		telegram      int64
		discord       string
		passwordStdin bool
		nargs         = 1 // NAME
	)
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, memberUsage)
		return nil
	case "add":
		fs.StringVar(&role, "role", role, "admin or agent")
		fs.Func("telegram", "the member's Telegram user id", func(v string) error {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errors.New("want the numeric Telegram user id (not the @name; a bot such as @userinfobot shows it)")
			}
			telegram = id
			return nil
		})
		fs.StringVar(&discord, "discord", "", "the member's Discord user id")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	case "password":
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	case "list":
		nargs = 0
	case "remove", "token":
	default:
		return fmt.Errorf("member: unknown command %q; run `bilibridge member -h`", sub)
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, memberUsage)
		return nil
	}
	if err != nil {
		return fmt.Errorf("member %s: %v; run `bilibridge member -h`", sub, err)
	}
	if len(pos) != nargs {
		if nargs == 0 {
			return fmt.Errorf("member %s takes no arguments; run `bilibridge member -h`", sub)
		}
		return fmt.Errorf("member %s needs one NAME; run `bilibridge member -h`", sub)
	}
	// name goes to the team as typed, which checks it; the lower-cased
	// form is what it stores, shown once the command succeeded.
	var name, password string
	if nargs == 1 {
		name = pos[0]
	}
	shown := strings.ToLower(name)
	if passwordStdin {
		if password, err = readPassword(stdin); err != nil {
			return err
		}
	}

	cfg, err := config.Load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	kv, closeTeam, err := openTeam(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer closeTeam()
	members := team.NewMembers(kv)

	switch sub {
	case "add":
		generated := password == ""
		if generated {
			password = team.GeneratePassword()
		}
		m := team.Member{Name: name, Role: team.Role(role), TelegramID: telegram, DiscordID: discord}
		if err := members.Add(ctx, m, password); err != nil {
			return memberError(err)
		}
		fmt.Fprintf(stdout, "Added %s (%s).\n", shown, role)
		if generated {
			printPassword(stdout, shown, password)
		}
	case "list":
		list, err := members.List(ctx)
		if err != nil {
			return memberError(err)
		}
		if len(list) == 0 {
			fmt.Fprintln(stdout, "The team has no members yet; add one with `bilibridge member add NAME --role admin`.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tTELEGRAM\tDISCORD\tCREATED")
		for _, m := range list {
			tg, dc := "-", "-"
			if m.TelegramID != 0 {
				tg = strconv.FormatInt(m.TelegramID, 10)
			}
			if m.DiscordID != "" {
				dc = m.DiscordID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Role, tg, dc, m.Created.UTC().Format("2006-01-02 15:04 UTC"))
		}
		return tw.Flush()
	case "remove":
		if err := members.Remove(ctx, name); err != nil {
			return memberError(err)
		}
		fmt.Fprintf(stdout, "Removed %s; their tokens no longer work.\n", shown)
	case "password":
		generated := password == ""
		if generated {
			password = team.GeneratePassword()
		}
		if err := members.SetPassword(ctx, name, password); err != nil {
			return memberError(err)
		}
		fmt.Fprintf(stdout, "Set a new password for %s.\n", shown)
		if generated {
			printPassword(stdout, shown, password)
		}
	case "token":
		token, err := members.NewToken(ctx, name)
		if err != nil {
			return memberError(err)
		}
		fmt.Fprintf(stdout, "A new API token for %s, shown only this once (store it now):\n\n  %s\n\n", shown, token)
		fmt.Fprintf(stdout, "Send it with every API request as the header\n\n  Authorization: Bearer %s\n\n", token)
		fmt.Fprintf(stdout, "It works until %s is removed (`bilibridge member remove %s`).\n", shown, shown)
	}
	return nil
}

func printPassword(w io.Writer, name, password string) {
	fmt.Fprintf(w, "One-time password: %s\n", password)
	fmt.Fprintf(w, "It is shown only this once: give it to %s. `bilibridge member password %s` sets a new one (--password-stdin to choose it).\n", name, name)
}

// memberError turns the team's answers into one sentence naming what to
// do. They name the member already ("member \"ana\": …").
func memberError(err error) error {
	switch {
	case errors.Is(err, team.ErrNoMember):
		return fmt.Errorf("%w; see `bilibridge member list`", err)
	case errors.Is(err, team.ErrMemberExists):
		return fmt.Errorf("%w; choose another name, or `bilibridge member remove` the old one first", err)
	}
	return err
}

// readPassword reads the first line of r, as `docker login
// --password-stdin` does: a password on the command line would be in the
// shell history and the process list.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("member: reading the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("member: --password-stdin found no password on stdin; pipe one in, e.g. `printf '%s\\n' \"$PW\" | bilibridge member …`")
	}
	return line, nil
}

// parseInterspersed parses flags wherever they stand among the arguments,
// so that `member add ana --role admin` works as the usage shows it (the
// flag package stops at the first argument that is not a flag). After
// "--" everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard) // errors are returned; help is printed by the caller
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// openTeam opens bucket bili_team: through the NATS of a running bridge,
// or, when there is none and the bridge's NATS is the embedded one, by
// starting that server in this process on DATA_DIR.
func openTeam(ctx context.Context, cfg *config.Config, stderr io.Writer) (jetstream.KeyValue, func(), error) {
	// nats-server takes no lock on its store directory (v2.15.2 only
	// checks that it is writable), and two servers on one store lose
	// acknowledged writes. So the store is opened here only when no
	// bridge can be holding it: none answers on NATS_LISTEN, and none
	// answers on HTTP_ADDR (one with NATS_LISTEN=off would).
	if cfg.NATSURL == "" && cfg.NATSListen == "off" {
		return nil, nil, errInProcessBridge
	}
	nc, err := bridge.Dial(cfg, "bilibridge member")
	if err == nil {
		kv, err := teamBucket(ctx, nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return kv, nc.Close, nil
	}
	// Only "nobody listens" allows the embedded store: a refused login or
	// a server that does not answer is someone's NATS.
	if cfg.NATSURL != "" || !errors.Is(err, nats.ErrNoServers) {
		return nil, nil, err
	}
	if bridgeAnswersHTTP(ctx, cfg.HTTPAddr) {
		return nil, nil, errInProcessBridge
	}
	conn, err := bus.Connect(ctx, bus.NATSConfig{Listen: "off", DataDir: cfg.DataDir, Name: "bilibridge member", Logger: cfg.Logger(stderr)})
	if err != nil {
		return nil, nil, fmt.Errorf("no bridge is running, and opening its NATS store in %s failed: %w", cfg.DataDir, err)
	}
	// The settings `bilibridge run` provisions with, so that its first
	// start finds everything as it would have made it.
	st, err := bus.Provision(ctx, conn.JS, bus.StoreConfig{
		Subjects: events.Subjects{Prefix: cfg.Prefix}, Replicas: cfg.NATSReplicas, MaxAge: cfg.StreamMaxAge, LeaseTTL: cfg.LeaseTTL,
	})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "No bridge is running: using the NATS store in %s directly.\n", filepath.Join(cfg.DataDir, "nats"))
	return st.Team, conn.Close, nil
}

// teamBucket opens bili_team on a running bridge's NATS.
func teamBucket(ctx context.Context, nc *nats.Conn) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, bus.BucketTeam)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("this NATS has no KV bucket %s: start a `bilibridge run` that has the team inbox once, then try again", bus.BucketTeam)
	}
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", bus.BucketTeam, err)
	}
	return kv, nil
}

// bridgeAnswersHTTP reports whether a bridge answers /healthz at addr
// (HTTP_ADDR; a wildcard host is asked on loopback).
func bridgeAnswersHTTP(ctx context.Context, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return false
	}
	// No proxy: the question is about this host.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	return resp.StatusCode == http.StatusOK &&
		json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&body) == nil && body.Status == "ok"
}
