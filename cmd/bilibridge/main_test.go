package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/testlog"
)

// clearEnv unsets every configuration variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	typ := reflect.TypeOf(config.Config{})
	for i := range typ.NumField() {
		if key := typ.Field(i).Tag.Get("envconfig"); key != "" {
			t.Setenv(key, "")
			// Setenv("") still counts as set; envconfig must see it unset.
			unsetenv(t, key)
		}
	}
}

// Without a login, run stays up and says once what to do; it stops
// without an error when asked to.
func TestRunWithoutLoginWaitsAndSaysWhatToDo(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("HTTP_ADDR", "")
	ctx, cancel := context.WithCancel(context.Background())
	var errOut testlog.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, &bytes.Buffer{}, &errOut) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errOut.String(), "no login: run `bilibridge login`") {
		select {
		case err := <-done:
			t.Fatalf("run returned (%v) instead of waiting for a login", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not say what to do: %q", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a few more looks for the file
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopping while waiting for a login: %v", err)
	}
	if n := strings.Count(errOut.String(), "no login:"); n != 1 {
		t.Errorf("said %d times, want once:\n%s", n, errOut.String())
	}
	for _, want := range []string{"BILI_SESSDATA", "bilibridge demo"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

func TestRefusesFastPolling(t *testing.T) {
	clearEnv(t)
	t.Setenv("POLL_INTERVAL", "2s")
	err := run(context.Background(), []string{"run"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "POLL_UNSAFE") {
		t.Fatalf("err %v", err)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(config.Config{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		line := ""
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, f.Tag.Get("envconfig")+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("help does not list %s", f.Tag.Get("envconfig"))
			continue
		}
		if def := f.Tag.Get("default"); def != "" && !strings.Contains(line, def) {
			t.Errorf("help line %q lacks the default %q", line, def)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	err := run(context.Background(), []string{"frobnicate"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "bilibridge help") {
		t.Fatalf("err %v", err)
	}
}

// old value and restores it.
func unsetenv(t *testing.T, key string) {
	t.Helper()
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
}

// -h and --help on every subcommand print its usage and exit 0.
func TestEverySubcommandHasHelp(t *testing.T) {
	for _, cmd := range []string{"run", "tail", "login", "demo", "bench", "send", "member", "dead", "status", "health"} {
		for _, flag := range []string{"-h", "--help"} {
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{cmd, flag}, &out, &errOut)
			if err != nil {
				t.Errorf("%s %s: %v", cmd, flag, err)
			}
			if !strings.Contains(strings.ToLower(out.String()+errOut.String()), "usage") {
				t.Errorf("%s %s printed no usage:\n%s%s", cmd, flag, &out, &errOut)
			}
		}
	}
}

// A login from the environment that Bilibili refuses, of an account the
// bridge cannot name, keeps the bridge up (not restarting in a loop) and
// says what to do about it — which is not `bilibridge login`.
func TestRunWithRejectedEnvironmentLoginStaysUp(t *testing.T) {
	fakeBilibili(t, t.TempDir())
	t.Setenv("BILI_SESSDATA", "not-a-session")
	t.Setenv("BILI_JCT", "0123456789abcdef0123456789abcdef")
	t.Setenv("HTTP_ADDR", "")
	t.Setenv("NATS_LISTEN", "off")
	ctx, cancel := context.WithCancel(context.Background())
	var errOut testlog.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, &bytes.Buffer{}, &errOut) }()
	want := "BILI_SESSDATA/BILI_JCT in the environment are not accepted"
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errOut.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("run returned (%v) instead of staying up", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not say what to do:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopping: %v", err)
	}
	if strings.Contains(errOut.String(), "run `bilibridge login` to log in again") {
		t.Errorf("the advice is a login the environment would override:\n%s", errOut.String())
	}
}

// A bad flag is said once, by the flag package with the usage; main only
// exits (it used to print the same error again).
func TestBadFlagIsSaidOnce(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"login", "--bogus"}, {"status", "--bogus"}, {"health", "--bogus"}, {"demo", "-for", "soon"}, {"dead", "list", "--bogus"}} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, &bytes.Buffer{}, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want errUsage (main prints nothing more)", args, err)
		}
		if !strings.Contains(stderr.String(), "Usage") && !strings.Contains(stderr.String(), "usage") {
			t.Errorf("%v: no usage printed:\n%s", args, &stderr)
		}
	}
}

// A send without content, or with an image that is no URL, is refused
// naming the command's flags (not the API's fields) before anything is
// dialled.
func TestSendNamesItsFlags(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send", "--to", "1"}, "give --text, --image or both"},
		{[]string{"send", "--to", "1", "--image", "ftp://x"}, "--image must be an absolute http or https URL"},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "image_url") {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
