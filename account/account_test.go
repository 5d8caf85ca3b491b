package account_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
)

const uid int64 = 425503913

func setup(t *testing.T, cr bilibili.Credentials) (*bilitest.Server, *bilibili.Client) {
	t.Helper()
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "old-sess", BiliJct: "old-jct", RefreshToken: "old-token"})
	u := fake.URL()
	c := bilibili.New(bilibili.Config{Credentials: cr, Endpoints: bilibili.Endpoints{API: u, MainAPI: u, Passport: u, WWW: u},
		HTTPClient: fake.Client(), Timeout: 2 * time.Second})
	return fake, c
}

// phone plays the person with the Bilibili app: it acts on each new code.
func phone(t *testing.T, fake *bilitest.Server, act func(n int, key string)) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := map[string]bool{}
		for ctx.Err() == nil {
			for _, k := range fake.QRKeys() {
				if !seen[k] {
					seen[k] = true
					act(len(seen), k)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func TestQRLoginStatesExpiryAndRegeneration(t *testing.T) {
	fake, c := setup(t, bilibili.Credentials{})
	stop := phone(t, fake, func(n int, key string) {
		if n == 1 {
			fake.ExpireQR(key) // the first code times out unscanned
			return
		}
		fake.ScanQR(key)
		time.Sleep(50 * time.Millisecond)
		fake.ConfirmQR(key, uid)
	})
	defer stop()
	var mu sync.Mutex
	var steps []account.LoginStep
	cr, err := account.Login(context.Background(), c, account.LoginOptions{Interval: 10 * time.Millisecond,
		Show: func(s account.LoginStep, _ *bilibili.QRCode) { mu.Lock(); steps = append(steps, s); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	want := []account.LoginStep{account.StepShowCode, account.StepExpired, account.StepShowCode, account.StepScanned, account.StepConfirmed}
	if fmt.Sprint(steps) != fmt.Sprint(want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if !cr.Valid() || cr.UID() != uid || cr.RefreshToken == "" || cr.SID == "" || cr.DedeUserIDMd5 == "" {
		t.Fatalf("credentials %v", cr)
	}
	c.SetCredentials(cr)
	if nav, err := c.Nav(context.Background()); err != nil || nav.Mid != uid {
		t.Errorf("the new login does not work: %v", err)
	}
}

func TestQRLoginGivesUpAfterExpiredCodes(t *testing.T) {
	fake, c := setup(t, bilibili.Credentials{})
	stop := phone(t, fake, func(_ int, key string) { fake.ExpireQR(key) })
	defer stop()
	_, err := account.Login(context.Background(), c, account.LoginOptions{Codes: 2, Interval: 10 * time.Millisecond})
	if err != account.ErrQRExpired {
		t.Fatalf("err %v", err)
	}
	if n := fake.Calls("generate"); n != 2 {
		t.Errorf("%d codes generated, want 2", n)
	}
}

func TestWriteCredentialsAtomically(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(dir, "credentials.json")
	cr := bilibili.Credentials{SESSDATA: "s", BiliJct: "j", DedeUserID: "1", RefreshToken: "r"}
	for range 2 { // the second write replaces the first
		if err := account.WriteCredentials(file, cr); err != nil {
			t.Fatal(err)
		}
		cr.SESSDATA = "s2"
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := account.ReadCredentials(file)
	if err != nil || got.SESSDATA != "s2" || got.RefreshToken != "r" {
		t.Errorf("read back %v %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestRefreshEndToEnd(t *testing.T) {
	old := bilibili.Credentials{SESSDATA: "old-sess", BiliJct: "old-jct", DedeUserID: fmt.Sprint(uid), RefreshToken: "old-token"}
	fake, c := setup(t, old)
	file := filepath.Join(t.TempDir(), "credentials.json")
	if err := account.WriteCredentials(file, old); err != nil {
		t.Fatal(err)
	}
	r := &account.Refresher{API: c, File: file, Key: fake.RefreshKey()}
	ctx := context.Background()
	if changed, err := r.RefreshIfNeeded(ctx); err != nil || changed {
		t.Fatalf("refresh when not needed: %v %v", changed, err)
	}
	fake.SetNeedsRefresh(uid, true)
	changed, err := r.RefreshIfNeeded(ctx)
	if err != nil || !changed {
		t.Fatalf("refresh: %v %v", changed, err)
	}
	onDisk, err := account.ReadCredentials(file)
	if err != nil || onDisk.SESSDATA == old.SESSDATA || onDisk.RefreshToken == old.RefreshToken || onDisk != c.Credentials() {
		t.Fatalf("file after refresh %v (%v)", onDisk, err)
	}
	if _, err := c.Nav(ctx); err != nil {
		t.Errorf("new cookies do not work: %v", err)
	}
	oldClient := bilibili.New(bilibili.Config{Credentials: old, Endpoints: c.Endpoints(), HTTPClient: fake.Client()})
	if _, err := oldClient.Nav(ctx); !bilibili.IsLoginExpired(err) {
		t.Errorf("the old session survived the confirmation: %v", err)
	}
	if n := fake.Sessions(uid); n != 1 {
		t.Errorf("%d sessions after the refresh, want 1", n)
	}
}

func TestCrashInTheMiddleOfARefresh(t *testing.T) {
	old := bilibili.Credentials{SESSDATA: "old-sess", BiliJct: "old-jct", DedeUserID: fmt.Sprint(uid), RefreshToken: "old-token"}
	fake, c := setup(t, old)
	file := filepath.Join(t.TempDir(), "credentials.json")
	if err := account.WriteCredentials(file, old); err != nil {
		t.Fatal(err)
	}
	fake.SetNeedsRefresh(uid, true)
	ctx := context.Background()
	// The process dies after Bilibili issued new cookies, before they were saved.
	if _, err := c.RefreshCookies(ctx, fake.RefreshKey()); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := account.ReadCredentials(file)
	restarted := bilibili.New(bilibili.Config{Credentials: onDisk, Endpoints: c.Endpoints(), HTTPClient: fake.Client()})
	if _, err := restarted.Nav(ctx); err != nil {
		t.Fatalf("the file left by the crash does not log in: %v", err)
	}
	// The restarted process refreshes again, all the way.
	r := &account.Refresher{API: restarted, File: file, Key: fake.RefreshKey()}
	if changed, err := r.RefreshIfNeeded(ctx); err != nil || !changed {
		t.Fatalf("refresh after the crash: %v %v", changed, err)
	}
	onDisk, _ = account.ReadCredentials(file)
	again := bilibili.New(bilibili.Config{Credentials: onDisk, Endpoints: c.Endpoints(), HTTPClient: fake.Client()})
	if _, err := again.Nav(ctx); err != nil {
		t.Errorf("the file after the second refresh does not log in: %v", err)
	}
}
