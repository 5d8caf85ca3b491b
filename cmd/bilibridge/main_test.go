package main

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/config"
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

func TestRunWithoutLoginSaysWhatToDo(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATA_DIR", t.TempDir())
	var out, errOut bytes.Buffer
	err := run(context.Background(), nil, &out, &errOut)
	if err == nil {
		t.Fatal("run without a login succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"no Bilibili login", "BILI_SESSDATA", "bilibridge demo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Count(msg, "\n") > 0 || strings.Contains(msg, "goroutine") {
		t.Errorf("not one sentence: %q", msg)
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
	for _, cmd := range []string{"run", "tail", "login", "demo", "bench", "send", "member", "dead"} {
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
