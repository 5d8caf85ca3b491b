package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
)

// fakeBilibili starts the fake Bilibili with its demo account and points
// the configuration at it, in a clean environment with DATA_DIR dataDir.
func fakeBilibili(t *testing.T, dataDir string) *bilitest.Server {
	t.Helper()
	clearEnv(t)
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.SeedDemo()
	for _, k := range []string{"BILI_API_URL", "BILI_MAIN_API_URL", "BILI_PASSPORT_URL", "BILI_WWW_URL"} {
		t.Setenv(k, fake.URL())
	}
	t.Setenv("DATA_DIR", dataDir)
	return fake
}

// phone is the terminal of the person logging in: it records what login
// prints (stdout and stderr, in order) and, like a phone, scans and
// confirms every QR code as the demo account as soon as one is shown.
type phone struct {
	fake *bilitest.Server
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *phone) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytes.Contains(b, []byte("Scan this QR code")) {
		for _, k := range p.fake.QRKeys() {
			p.fake.ScanQR(k)
			p.fake.ConfirmQR(k, bilitest.DemoUID)
		}
	}
	return p.out.Write(b)
}

func (p *phone) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// underAFile is a directory nobody can make, root included: its parent
// is a regular file.
func underAFile(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(file, "data")
}

func TestLoginChecksTheDirectoryBeforeTheQRCode(t *testing.T) {
	bad := underAFile(t)
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantVar  string
		wantPath string
	}{
		{"DATA_DIR", map[string]string{"DATA_DIR": bad}, "DATA_DIR=" + bad, bad},
		{"BILI_CREDENTIALS_FILE", map[string]string{"BILI_CREDENTIALS_FILE": filepath.Join(bad, "creds.json")},
			"BILI_CREDENTIALS_FILE=" + filepath.Join(bad, "creds.json"), bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakeBilibili(t, t.TempDir())
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			term := &phone{fake: fake}
			err := run(context.Background(), []string{"login"}, term, term)
			if err == nil {
				t.Fatalf("login into an unwritable directory succeeded; it printed:\n%s", term)
			}
			if n := fake.Calls("generate"); n != 0 {
				t.Errorf("login asked for %d QR code(s) before finding it cannot save the login", n)
			}
			if strings.Contains(term.String(), "Scan") {
				t.Errorf("login showed the QR code:\n%s", term)
			}
			msg := err.Error()
			for _, want := range []string{tc.wantVar, tc.wantPath, "writable"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
		})
	}
}

func TestLoginSaysWhenTheEnvironmentOverridesIt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fromEnv bool
	}{
		{"cookies in the environment", true},
		{"no cookies in the environment", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fake := fakeBilibili(t, dir)
			if tc.fromEnv {
				t.Setenv("BILI_SESSDATA", bilitest.DemoSESSDATA)
				t.Setenv("BILI_JCT", bilitest.DemoBiliJct)
			}
			term := &phone{fake: fake}
			if err := run(context.Background(), []string{"login"}, term, term); err != nil {
				t.Fatalf("login: %v; it printed:\n%s", err, term)
			}
			if _, err := account.ReadCredentials(filepath.Join(dir, "credentials.json")); err != nil {
				t.Fatalf("login saved no credentials: %v", err)
			}
			out := term.String()
			notice := strings.Index(out, "override the credentials file")
			if !tc.fromEnv {
				if notice >= 0 || strings.Contains(out, "BILI_SESSDATA") {
					t.Errorf("login warns of cookies that are not set:\n%s", out)
				}
				return
			}
			if notice < 0 || notice > strings.Index(out, "Scan this QR code") {
				t.Errorf("no notice that BILI_SESSDATA/BILI_JCT override the login before the QR code:\n%s", out)
			}
			last := out[strings.LastIndex(out, "Logged in as"):]
			for _, want := range []string{"BILI_SESSDATA", "unset them"} {
				if !strings.Contains(last, want) {
					t.Errorf("the closing line %q lacks %q", last, want)
				}
			}
			if strings.Contains(last, "picks them up") {
				t.Errorf("the closing line promises the bridge uses the file the environment overrides: %q", last)
			}
		})
	}
}

func TestLoginCheckSaysWhichLoginItChecked(t *testing.T) {
	demo := bilibili.Credentials{SESSDATA: bilitest.DemoSESSDATA, BiliJct: bilitest.DemoBiliJct, DedeUserID: "425503913"}
	for _, tc := range []struct {
		name        string
		env         bool // BILI_SESSDATA and BILI_JCT set
		file        bool // a credentials file saved
		expired     bool // Bilibili no longer accepts the login
		unreachable bool // nothing answers at Bilibili's address
		other       bool // a second account's file, a login Bilibili does not know
		want        []string
		wantErr     bool
	}{
		{name: "file", file: true,
			want: []string{"The login from {file} works", "bilifake-demo", "uid 425503913"}},
		{name: "environment", env: true,
			want: []string{"The login from the environment (BILI_SESSDATA) works", "bilifake-demo", "uid 425503913"}},
		{name: "environment over a file", env: true, file: true,
			want: []string{"{file} is not used while BILI_SESSDATA/BILI_JCT are set", "the environment (BILI_SESSDATA) works"}},
		{name: "expired file", file: true, expired: true, wantErr: true,
			want: []string{"the login of account 425503913 from {file} no longer works", "run `bilibridge login`"}},
		{name: "expired environment", env: true, expired: true, wantErr: true,
			want: []string{"the login of an unknown account from the environment (BILI_SESSDATA) no longer works", "unset them"}},
		{name: "two accounts, one expired", file: true, other: true, wantErr: true,
			want: []string{"The login from {file} works", "the login of account 777 from {dir}/credentials-777.json no longer works", "1 of 2 logins do not work"}},
		{name: "Bilibili unreachable", file: true, unreachable: true, wantErr: true,
			want: []string{"the login of account 425503913 from {file} could not be checked", "try again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fake := fakeBilibili(t, dir)
			file := filepath.Join(dir, "credentials.json")
			if tc.file {
				if err := account.WriteCredentials(file, demo); err != nil {
					t.Fatal(err)
				}
			}
			if tc.other {
				other := bilibili.Credentials{SESSDATA: "unknown-to-bilibili", BiliJct: "0123456789abcdef", DedeUserID: "777"}
				if err := account.WriteCredentials(filepath.Join(dir, "credentials-777.json"), other); err != nil {
					t.Fatal(err)
				}
			}
			if tc.env {
				t.Setenv("BILI_SESSDATA", demo.SESSDATA)
				t.Setenv("BILI_JCT", demo.BiliJct)
			}
			if tc.expired {
				fake.SetLoginValid(bilitest.DemoUID, false)
			}
			if tc.unreachable {
				t.Setenv("BILI_MAIN_API_URL", "http://"+closedAddr(t))
			}
			var out bytes.Buffer
			err := run(context.Background(), []string{"login", "--check"}, &out, &out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("login --check: %v, want error %v; it printed:\n%s", err, tc.wantErr, &out)
			}
			if err != nil { // as main prints it
				fmt.Fprintln(&out, "bilibridge:", err)
				if first := strings.SplitN(err.Error(), " (", 2)[0]; strings.Count(out.String(), first) != 1 {
					t.Errorf("login --check says %q more than once:\n%s", first, &out)
				}
			}
			if tc.unreachable && strings.Contains(out.String(), "no longer works") {
				t.Errorf("login --check blames the login for an unreachable Bilibili:\n%s", &out)
			}
			for _, want := range tc.want {
				want = strings.ReplaceAll(strings.ReplaceAll(want, "{file}", file), "{dir}", dir)
				if !strings.Contains(out.String(), want) {
					t.Errorf("login --check printed\n%s\nwithout %q", &out, want)
				}
			}
		})
	}
}

// closedAddr is a local address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
