package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
)

// TestFlagHelpShowsNoBackquotes: the flag package takes a backquoted word
// in a usage text as the flag's value name, so "-auto-login bilibridge
// login" would show in the help instead of "-auto-login duration".
func TestFlagHelpShowsNoBackquotes(t *testing.T) {
	var help bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp (main exits 0 on it)", err)
	}
	if strings.Contains(help.String(), "`") || !strings.Contains(help.String(), "Usage: bilifake") {
		t.Errorf("help:\n%s", &help)
	}
	fs, _ := newFlags(&bytes.Buffer{})
	fs.VisitAll(func(f *flag.Flag) {
		name, _ := flag.UnquoteUsage(f)
		if want := map[string]string{"addr": "string", "traffic": "duration", "auto-login": "duration"}[f.Name]; name != want {
			t.Errorf("-%s shows value name %q, want %q", f.Name, name, want)
		}
		if !strings.Contains(help.String(), "-"+f.Name) {
			t.Errorf("help lacks -%s:\n%s", f.Name, &help)
		}
	})
}

func TestExportLinesLeaveTheCookiesOutForAutoLogin(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		wantCookies bool
	}{
		{"cookies", nil, true},
		{"auto-login", []string{"-auto-login", "3s"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // print, then stop at once
			var out bytes.Buffer
			if err := run(ctx, append([]string{"-addr", "127.0.0.1:0"}, tc.args...), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			env := exported(out.String())
			if env["BILI_PASSPORT_URL"] == "" || env["BILI_API_URL"] != env["BILI_PASSPORT_URL"] {
				t.Errorf("the export lines do not point bilibridge at the fake:\n%s", &out)
			}
			for k, v := range map[string]string{"BILI_SESSDATA": "'" + bilitest.DemoSESSDATA + "'", "BILI_JCT": bilitest.DemoBiliJct} {
				if got, ok := env[k]; ok != tc.wantCookies || (ok && got != v) {
					t.Errorf("%s exported as %q (%v), want exported %v:\n%s", k, got, ok, tc.wantCookies, &out)
				}
			}
			if !tc.wantCookies && !strings.Contains(out.String(), "bilibridge login") {
				t.Errorf("with -auto-login it does not say to run bilibridge login:\n%s", &out)
			}
		})
	}
}

// exported reads NAME=value from the output's export lines.
func exported(out string) map[string]string {
	env := map[string]string{}
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

// TestAutoLoginConfirmsTheQRLogin logs in against bilifake -auto-login as
// bilibridge login does, with nobody scanning.
func TestAutoLoginConfirmsTheQRLogin(t *testing.T) {
	f, err := start([]string{"-addr", "127.0.0.1:0", "-auto-login", "10ms"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	client := bilibili.New(bilibili.Config{Endpoints: bilibili.Endpoints{API: f.base, MainAPI: f.base, Passport: f.base, WWW: f.base}})
	creds, err := account.Login(ctx, client, account.LoginOptions{Codes: 1, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("login against -auto-login: %v", err)
	}
	if creds.UID() != bilitest.DemoUID {
		t.Errorf("logged in as uid %d, want the demo account %d", creds.UID(), bilitest.DemoUID)
	}
}
