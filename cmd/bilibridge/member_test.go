package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/team"
)

// memberBridge stands in for a running bridge: a provisioned NATS that
// NATS_URL points at. It returns the team bucket.
func memberBridge(t *testing.T) jetstream.KeyValue {
	t.Helper()
	clearEnv(t)
	s := bustest.StartServer(t)
	st := bustest.Provision(t, s.Connect(t), time.Minute)
	t.Setenv("NATS_URL", s.URL)
	t.Setenv("DATA_DIR", t.TempDir())
	return st.Team
}

// member runs `bilibridge member args…` with stdin.
func member(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = memberCommand(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustMember is member for a command that must succeed; it returns stdout.
func mustMember(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, _, err := member(t, stdin, args...)
	if err != nil {
		t.Fatalf("member %s: %v", strings.Join(args, " "), err)
	}
	return out
}

var oneTimePassword = regexp.MustCompile(`(?m)^One-time password: (\S+)$`)

// printedPassword is the one-time password in out.
func printedPassword(t *testing.T, out string) string {
	t.Helper()
	m := oneTimePassword.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no one-time password in %q", out)
	}
	return m[1]
}

func TestMemberHelp(t *testing.T) {
	for _, args := range [][]string{
		{"member", "-h"},
		{"member", "--help"},
		{"member", "help"},
		{"member", "add", "-h"},
		{"member", "token", "--help"},
		{"member", "add", "ana", "--role", "admin", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), args, &out, &bytes.Buffer{}); err != nil {
				t.Fatalf("exit with %v, want 0", err)
			}
			for _, want := range []string{"bilibridge member add NAME", "--password-stdin", "member token NAME", "NATS_LISTEN"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("usage lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &out, &bytes.Buffer{}); err != nil || !strings.Contains(out.String(), "bilibridge member") {
		t.Errorf("`bilibridge help` does not mention the member command (%v)", err)
	}
}

// The whole life of a member through the CLI, checked against the bucket.
func TestMemberCommands(t *testing.T) {
	ctx := context.Background()
	kv := memberBridge(t)
	members := team.NewMembers(kv)

	// add, with a generated password (through run, as main calls it).
	var outBuf bytes.Buffer
	if err := run(ctx, []string{"member", "add", "Ana", "--role", "admin", "--telegram", "1001"}, &outBuf, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	out := outBuf.String()
	if !strings.Contains(out, "Added ana (admin).") || !strings.Contains(out, "sets a new one") {
		t.Errorf("add printed %q", out)
	}
	anaPassword := printedPassword(t, out)
	m, err := members.CheckPassword(ctx, "ana", anaPassword)
	if err != nil {
		t.Fatalf("the printed password does not log ana in: %v", err)
	}
	if m.Role != team.RoleAdmin || m.TelegramID != 1001 || m.DiscordID != "" {
		t.Errorf("stored %+v", m)
	}

	// add, with the password from stdin, flags before the name.
	out = mustMember(t, "correct horse battery staple\n", "add", "--discord", "80351110224678912", "--password-stdin", "bob")
	if oneTimePassword.MatchString(out) || strings.Contains(out, "correct horse") {
		t.Errorf("add --password-stdin printed a password: %q", out)
	}
	if m, err := members.CheckPassword(ctx, "bob", "correct horse battery staple"); err != nil || m.Role != team.RoleAgent || m.DiscordID != "80351110224678912" {
		t.Errorf("bob: %+v, %v", m, err)
	}

	// list: a table, no hashes.
	out = mustMember(t, "", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("list printed %d lines, want a header and 2 members:\n%s", len(lines), out)
	}
	today := time.Now().UTC().Format("2006-01-02")
	for i, want := range [][]string{
		{"NAME", "ROLE", "TELEGRAM", "DISCORD", "CREATED"},
		{"ana", "admin", "1001", "-", today},
		{"bob", "agent", "-", "80351110224678912", today},
	} {
		if got := strings.Fields(lines[i]); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("list line %d = %q, want it to start with %q", i, lines[i], want)
		}
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, "$") {
		t.Errorf("list shows hashes:\n%s", out)
	}

	// password: generated and printed; the old one stops working.
	out = mustMember(t, "", "password", "ana")
	newPassword := printedPassword(t, out)
	if newPassword == anaPassword {
		t.Fatal("password printed the old password")
	}
	if _, err := members.CheckPassword(ctx, "ana", anaPassword); !errors.Is(err, team.ErrBadLogin) {
		t.Errorf("old password after `member password`: %v", err)
	}
	if _, err := members.CheckPassword(ctx, "ana", newPassword); err != nil {
		t.Errorf("new password: %v", err)
	}
	// password from stdin: nothing printed but the confirmation.
	out = mustMember(t, "another long password\r\n", "password", "ana", "--password-stdin")
	if oneTimePassword.MatchString(out) || strings.Contains(out, "another long") {
		t.Errorf("password --password-stdin printed a password: %q", out)
	}
	if _, err := members.CheckPassword(ctx, "ana", "another long password"); err != nil {
		t.Errorf("password from stdin (CRLF): %v", err)
	}

	// token: printed once, with how to use it, and it works.
	out = mustMember(t, "", "token", "ana")
	token := regexp.MustCompile(`bbt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`).FindString(out)
	if token == "" {
		t.Fatalf("token printed no token: %q", out)
	}
	if !strings.Contains(out, "Authorization: Bearer "+token) {
		t.Errorf("token does not say how to use it: %q", out)
	}
	if m, err := members.ByToken(ctx, token); err != nil || m.Name != "ana" {
		t.Errorf("printed token: %+v, %v", m, err)
	}

	// remove: the member and their token are gone.
	out = mustMember(t, "", "remove", "ANA")
	if !strings.Contains(out, "Removed ana") {
		t.Errorf("remove printed %q", out)
	}
	if _, err := members.Get(ctx, "ana"); !errors.Is(err, team.ErrNoMember) {
		t.Errorf("ana after remove: %v", err)
	}
	if _, err := members.ByToken(ctx, token); !errors.Is(err, team.ErrBadToken) {
		t.Errorf("ana's token after remove: %v", err)
	}
	if keys := bustest.Keys(t, kv); !slices.Equal(keys, []string{"member.bob"}) {
		t.Errorf("keys after remove: %v", keys)
	}
	if out := mustMember(t, "", "list"); strings.Contains(out, "ana") {
		t.Errorf("list after remove:\n%s", out)
	}
}

func TestMemberListEmpty(t *testing.T) {
	memberBridge(t)
	if out := mustMember(t, "", "list"); !strings.Contains(out, "no members yet") || !strings.Contains(out, "member add") {
		t.Errorf("list of an empty team: %q", out)
	}
}

// Every mistake is one sentence that says what to do.
func TestMemberErrors(t *testing.T) {
	memberBridge(t)
	mustMember(t, "", "add", "ana")
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no command", "", nil, "member -h"},
		{"unknown command", "", []string{"rename", "ana"}, `unknown command "rename"`},
		{"no name", "", []string{"add"}, "needs one NAME"},
		{"two names", "", []string{"remove", "ana", "bob"}, "needs one NAME"},
		{"list with a name", "", []string{"list", "ana"}, "takes no arguments"},
		{"unknown flag", "", []string{"add", "bob", "--admin"}, "flag provided but not defined: -admin"},
		{"bad telegram id", "", []string{"add", "bob", "--telegram", "@bob"}, `want the numeric Telegram user id`},
		{"bad name", "", []string{"add", "bob smith"}, "use 1 to 32 of a-z, 0-9"},
		{"bad role", "", []string{"add", "bob", "--role", "owner"}, "want admin or agent"},
		{"exists", "", []string{"add", "ANA"}, "exists already; choose another name"},
		{"remove unknown", "", []string{"remove", "bob"}, "member \"bob\": no such team member; see `bilibridge member list`"},
		{"token of unknown", "", []string{"token", "bob"}, "no such team member"},
		{"password of unknown", "", []string{"password", "bob"}, "no such team member"},
		{"empty stdin", "", []string{"add", "bob", "--password-stdin"}, "no password on stdin"},
		{"short password", "short\n", []string{"add", "bob", "--password-stdin"}, "at least 8 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := member(t, tt.stdin, tt.args...)
			if err == nil {
				t.Fatal("succeeded")
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line saying %q", msg, tt.want)
			}
		})
	}
	if out := mustMember(t, "", "list"); strings.Contains(out, "bob") {
		t.Errorf("a refused command added bob:\n%s", out)
	}
}

func TestMemberBucketMissing(t *testing.T) {
	clearEnv(t)
	s := bustest.StartServer(t) // a NATS no bridge has provisioned
	t.Setenv("NATS_URL", s.URL)
	t.Setenv("DATA_DIR", t.TempDir())
	_, _, err := member(t, "", "list")
	if err == nil || !strings.Contains(err.Error(), "bili_team") || !strings.Contains(err.Error(), "bilibridge run") {
		t.Fatalf("err %v, want it to name the bucket and `bilibridge run`", err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// With a bridge running (its embedded NATS listening at NATS_LISTEN), the
// command works through it and leaves DATA_DIR alone.
func TestMemberThroughNATSListen(t *testing.T) {
	clearEnv(t)
	s := bustest.StartServer(t)
	st := bustest.Provision(t, s.Connect(t), time.Minute)
	dataDir := t.TempDir()
	t.Setenv("DATA_DIR", dataDir)
	t.Setenv("NATS_LISTEN", strings.TrimPrefix(s.URL, "nats://"))
	_, stderr, err := member(t, "", "add", "ana")
	if err != nil {
		t.Fatal(err)
	}
	if stderr != "" {
		t.Errorf("stderr %q", stderr)
	}
	if _, err := team.NewMembers(st.Team).Get(context.Background(), "ana"); err != nil {
		t.Errorf("ana is not in the running bridge's bucket: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nats")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command opened the store in DATA_DIR beside a running bridge (%v)", err)
	}
}

// A fresh install: no bridge has run, nothing listens. The command opens
// the embedded store in DATA_DIR itself, and what it writes is there for
// the bridge's first start.
func TestMemberFreshInstall(t *testing.T) {
	clearEnv(t)
	dataDir := t.TempDir()
	t.Setenv("DATA_DIR", dataDir)
	t.Setenv("NATS_LISTEN", freeAddr(t))
	t.Setenv("HTTP_ADDR", freeAddr(t))

	out, stderr, err := member(t, "", "add", "ana", "--role", "admin")
	if err != nil {
		t.Fatal(err)
	}
	password := printedPassword(t, out)
	if !strings.Contains(stderr, "No bridge is running") {
		t.Errorf("stderr %q does not say the store was opened directly", stderr)
	}
	// A second command opens the store again: the member was saved.
	if out := mustMember(t, "", "list"); !strings.Contains(out, "ana") {
		t.Errorf("list after add on a fresh install:\n%s", out)
	}

	// The bridge's own start (bus.Connect on DATA_DIR, Provision) finds
	// ana with that password.
	ctx := context.Background()
	conn, err := bus.Connect(ctx, bus.NATSConfig{Listen: "off", DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := bus.Provision(ctx, conn.JS, bus.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := team.NewMembers(st.Team).CheckPassword(ctx, "ana", password); err != nil || m.Role != team.RoleAdmin {
		t.Errorf("ana in the store: %+v, %v", m, err)
	}
}

// Where a bridge may hold the embedded store without a listener, or the
// NATS found is not usable, the command must not open the store itself:
// nats-server does not lock it, and two servers on it lose writes.
func TestMemberDoesNotOpenStoreBesideBridge(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T)
		want  string
	}{
		{"NATS_LISTEN=off", func(t *testing.T) {
			t.Setenv("NATS_LISTEN", "off")
		}, "seems to be running with NATS_LISTEN=off, and NATS does not lock its store"},
		{"a bridge answers on HTTP_ADDR but not on NATS_LISTEN", func(t *testing.T) {
			t.Setenv("NATS_LISTEN", freeAddr(t))
			t.Setenv("HTTP_ADDR", runBridgeHTTP(t))
		}, "seems to be running with NATS_LISTEN=off, and NATS does not lock its store"},
		{"NATS_URL set but down", func(t *testing.T) {
			t.Setenv("NATS_URL", "nats://"+freeAddr(t))
			t.Setenv("HTTP_ADDR", freeAddr(t))
		}, "is `bilibridge run` running?"},
		{"a NATS on NATS_LISTEN refuses the login", func(t *testing.T) {
			s := bustest.StartServerWithLogin(t, "someone", "else")
			t.Setenv("NATS_LISTEN", strings.TrimPrefix(s.URL, "nats://"))
			t.Setenv("HTTP_ADDR", freeAddr(t))
		}, "refused the login: set NATS_USER and NATS_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			dataDir := t.TempDir()
			t.Setenv("DATA_DIR", dataDir)
			tt.setup(t)
			_, _, err := member(t, "", "add", "ana")
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line saying %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dataDir, "nats")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the command opened the store in DATA_DIR (%v)", err)
			}
		})
	}
}

// runBridgeHTTP serves the bridge's own HTTP server (/healthz) on a
// loopback port until the test ends, and returns its address.
func runBridgeHTTP(t *testing.T) string {
	t.Helper()
	srv := bridge.NewHTTPServer("127.0.0.1:0", prometheus.NewRegistry(), func() error { return nil }, slog.New(slog.DiscardHandler))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv.Addr()
}
