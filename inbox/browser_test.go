package inbox_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/team"
)

var screenshots = flag.String("screenshots", "", "write screenshots of the inbox into this directory (docs/ for the README)")

const (
	uid      int64 = 425503913
	friend   int64 = 293793435
	stranger int64 = 111222333
	password       = "correct horse battery staple"
)

// chromium finds Debian's chromium (installed by .ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium found: install Debian's chromium package (apt-get install -y chromium); .ci/run does it")
	return ""
}

// world is a running bridge against the fake Bilibili, with two members.
type world struct {
	fake *bilitest.Server
	app  *bridge.Bridge
	base string
}

func startWorld(t *testing.T) *world {
	t.Helper()
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", FollowsAccount: true})
	fake.AddUser(bilitest.User{UID: stranger, Name: "stranger", FollowsAccount: true})
	u := fake.URL()
	cfg := config.Defaults()
	cfg.DataDir, cfg.APIURL, cfg.MainAPIURL, cfg.PassportURL, cfg.WWWURL = t.TempDir(), u, u, u, u
	cfg.PollInterval, cfg.PollUnsafe = 50*time.Millisecond, true
	cfg.NATSListen, cfg.HTTPAddr = "off", "127.0.0.1:0"
	cfg.StartFrom = "now"

	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *bridge.Bridge, 1)
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, bridge.Options{Config: &cfg, HTTPClient: fake.Client(),
			Accounts: []config.Login{{Credentials: bilibili.Credentials{SESSDATA: "sess", BiliJct: "jct"}}},
			Started:  func(b *bridge.Bridge) { started <- b }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var app *bridge.Bridge
	select {
	case app = <-started:
	case err := <-done:
		t.Fatalf("the bridge stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the bridge did not start")
	}
	for _, name := range []string{"ana", "bo"} {
		if err := app.Members.Add(context.Background(), team.Member{Name: name}, password); err != nil {
			t.Fatal(err)
		}
	}
	return &world{fake: fake, app: app, base: "http://" + app.HTTPAddr}
}

// dm delivers a text DM from talker.
func (w *world) dm(talker int64, text string) {
	w.fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(talker), MsgType: 1, Content: bilitest.TextContent(text)})
}

// browser is one signed-in (or not) browser context: its own cookies.
type browser struct {
	t       *testing.T
	ctx     context.Context
	dialogs *[]string // the messages of dialogs the page opened
}

func newBrowser(t *testing.T, parent context.Context) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	var mu sync.Mutex
	dialogs := &[]string{}
	opened := make(chan struct{}, 16)
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			mu.Lock()
			*dialogs = append(*dialogs, d.Message)
			mu.Unlock()
			select {
			case opened <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatalf("starting a browser tab: %v", err)
	}
	// A dialog would stall the page: close each (and remember it).
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-opened:
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}
		}
	}()
	b := &browser{t: t, ctx: ctx, dialogs: dialogs}
	b.do("the window size", chromedp.EmulateViewport(1280, 800))
	return b
}

// do runs actions that return nothing.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// evalInt evaluates a JavaScript expression (a promise is awaited).
func evalAs[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitText waits until the element sel holds want.
func (b *browser) waitText(what, sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, sel)))
		cancel()
		got = v
		if err == nil && strings.Contains(got, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("%s: %s never showed %q (it shows %q)", what, sel, want, got)
}

func (b *browser) signIn(base, name, pw string) {
	b.t.Helper()
	b.do("sign in "+name,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`input[name=name]`),
		chromedp.SendKeys(`input[name=name]`, name),
		chromedp.SendKeys(`input[name=password]`, pw),
		chromedp.Submit(`input[name=password]`),
	)
}

// TestInboxInBrowser drives the inbox in headless Chromium against the
// real bridge, embedded NATS and the fake Bilibili.
func TestInboxInBrowser(t *testing.T) {
	w := startWorld(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// The first context starts the browser; each later one is a new
	// browser context (its own cookies), like another person.
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ana := newBrowser(t, root)

	// A wrong password is refused.
	ana.signIn(w.base, "ana", "not the password")
	ana.waitText("a wrong password", "body", "Wrong name or password.")

	ana.signIn(w.base, "ana", password)
	ana.waitText("the inbox", "#conv-empty", "Pick a conversation")

	// A DM appears without a reload.
	w.dm(friend, "hello from Bilibili")
	ana.waitText("the new DM in the list", "#list", "hello from Bilibili")
	if title := evalAs[string](ana, `document.title`); title != "(1) bilibridge" {
		t.Errorf("tab title %q, want the unread count in it", title)
	}
	ana.do("open it", chromedp.Click(`#list li[data-key="425503913.1.293793435"]`))
	ana.waitText("the history", "#messages", "hello from Bilibili")

	// A reply reaches send_msg and shows as sent.
	ana.do("reply", chromedp.SendKeys(`#text`, "thanks, on it"), chromedp.KeyEvent("\r"))
	ana.waitText("the reply sent", "#messages", "sent")
	deadline := time.Now().Add(10 * time.Second)
	for len(w.fake.Sent(uid)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := w.fake.Sent(uid); len(s) != 1 || !strings.Contains(s[0].Content, "thanks, on it") {
		t.Fatalf("send_msg got %+v", s)
	}

	// An image picked from the disk is sent as an image.
	ana.do("pick an image", chromedp.SetUploadFiles(`#image`, []string{pngFile(t)}))
	for end := time.Now().Add(15 * time.Second); len(w.fake.Sent(uid)) < 2 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if s := w.fake.Sent(uid); len(s) != 2 || s[1].MsgType != 2 {
		t.Fatalf("send_msg got %+v, want the image as a second message", s)
	}

	// A refused send shows why.
	w.fake.Fail("send_msg", 1, bilitest.Fault{Code: 25003})
	ana.do("reply again", chromedp.SendKeys(`#text`, "are you there?"), chromedp.KeyEvent("\r"))
	ana.waitText("the refusal", "#messages", "failed: ")

	// A second member: the claim and done change their list.
	bo := newBrowser(t, root)
	bo.signIn(w.base, "bo", password)
	bo.waitText("bo's list", "#list", "friend")
	ana.do("claim", chromedp.Click(`#claim`))
	bo.waitText("the claim in bo's list", `#list li[data-key="425503913.1.293793435"]`, "ana")
	// Presence: bo opens it and types; ana sees it.
	bo.do("bo opens it", chromedp.Click(`#list li[data-key="425503913.1.293793435"]`), chromedp.SendKeys(`#text`, "hm"))
	ana.waitText("bo typing", "#presence", "bo is typing")
	ana.do("done", chromedp.Click(`#done`))
	left := false
	for end := time.Now().Add(10 * time.Second); !left && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		left = evalAs[bool](bo, `!document.querySelector('#list li[data-key="425503913.1.293793435"]')`)
	}
	if !left {
		t.Fatal("the done conversation stayed in bo's open list")
	}

	// A DM holding a script is shown as text and runs nothing.
	w.dm(stranger, `<script>alert(1)</script><img src=x onerror=alert(2)>`)
	ana.do("show open conversations", chromedp.Click(`button[data-status="open"]`))
	ana.waitText("the script DM in the list", "#list", "<script>alert(1)</script>")
	ana.do("open the script DM", chromedp.Click(`#list li[data-key="425503913.1.111222333"]`))
	ana.waitText("the script DM as text", "#messages", "<script>alert(1)</script><img src=x onerror=alert(2)>")
	injected := evalAs[int](ana, `document.querySelectorAll('#messages script, #messages img[src="x"], #list script').length`)
	if injected != 0 || len(*ana.dialogs) != 0 {
		t.Fatalf("the DM's markup became page elements (%d) or ran (dialogs %v)", injected, *ana.dialogs)
	}

	// Keyboard: a claims, e marks done.
	ana.do("a", chromedp.KeyEvent("a"))
	ana.waitText("claimed by the keyboard", "#conv-meta", "assigned to ana")
	ana.do("e", chromedp.KeyEvent("e"))
	ana.waitText("done by the keyboard", "#conv-meta", "done")

	// A state change without the CSRF token is refused, with the session.
	status := evalAs[int](ana, `fetch('/api/v1/conversations/425503913/1/111222333/notes', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{"text":"forged"}'}).then(r => r.status)`)
	if status != 403 {
		t.Fatalf("a note without the CSRF token: %d, want 403", status)
	}
	csrfOK := evalAs[int](ana, `fetch('/api/v1/conversations/425503913/1/111222333/notes', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}, body: '{"text":"real note"}'}).then(r => r.status)`)
	if csrfOK != 201 {
		t.Fatalf("a note with the CSRF token: %d, want 201", csrfOK)
	}
	ana.waitText("the note in the conversation", "#messages", "real note")
	// Another member opening the conversation sees the note too.
	bo.do("bo shows all", chromedp.Click(`button[data-status="all"]`))
	bo.waitText("the script DM in bo's list", "#list", "stranger")
	bo.do("bo opens it", chromedp.Click(`#list li[data-key="425503913.1.111222333"]`))
	bo.waitText("the note for bo", "#messages", "real note")

	if *screenshots != "" {
		takeScreenshots(t, w, root)
	}
}

// takeScreenshots writes the list and a conversation, light and dark.
func takeScreenshots(t *testing.T, w *world, root context.Context) {
	for i, who := range []struct {
		id   int64
		text string
	}{{222001, "想问一下新视频的BGM是哪首？"}, {222002, "合作邀约：下个月的活动可以聊聊吗"}, {222003, "up主加油！每期都看"}} {
		w.fake.AddUser(bilitest.User{UID: who.id, Name: []string{"小鹿乱撞", "商务合作-阿杰", "夜猫子"}[i], FollowsAccount: true})
		w.dm(who.id, who.text)
	}
	// A conversation with a reply and a note.
	prep := newBrowser(t, root)
	prep.signIn(w.base, "ana", password)
	prep.waitText("the list", "#list", "小鹿乱撞")
	prep.do("open", chromedp.Click(`#list li[data-key="425503913.1.222001"]`))
	prep.waitText("history", "#messages", "BGM")
	prep.do("reply", chromedp.SendKeys(`#text`, "是《夏日回忆》，简介里有链接哦～"), chromedp.KeyEvent("\r"))
	prep.waitText("sent", "#messages", "sent")
	w.dm(222001, "找到了，谢谢！🎉 下期什么时候更新呀")
	prep.waitText("the answer", "#messages", "下期")
	prep.do("note", chromedp.Click(`input[name=mode][value=note]`), chromedp.SendKeys(`#text`, "老粉，常来问BGM，可以做个歌单置顶"), chromedp.KeyEvent("\r"))
	prep.waitText("the note", "#messages", "歌单")
	prep.do("claim", chromedp.Click(`#claim`))
	prep.waitText("claimed", "#conv-meta", "assigned to ana")

	for _, dark := range []bool{false, true} {
		b := newBrowser(t, root)
		scheme := "light"
		if dark {
			scheme = "dark"
		}
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		b.signIn(w.base, "bo", password)
		b.waitText("the list", "#list", "夜猫子")
		b.do("settle", chromedp.Sleep(300*time.Millisecond))
		write(t, filepath.Join(*screenshots, "inbox-list-"+scheme+".png"), screenshot(b))
		b.do("open", chromedp.Click(`#list li[data-key="425503913.1.222001"]`))
		b.waitText("history", "#messages", "夏日回忆")
		b.waitText("history", "#older", "The beginning")
		b.do("settle", chromedp.Sleep(300*time.Millisecond))
		write(t, filepath.Join(*screenshots, "inbox-conversation-"+scheme+".png"), screenshot(b))
	}
	// A phone-sized screen shows one pane at a time.
	b := newBrowser(t, root)
	b.do("a phone", chromedp.EmulateViewport(390, 844))
	b.signIn(w.base, "bo", password)
	b.waitText("the list", "#list", "夜猫子")
	b.do("open", chromedp.Click(`#list li[data-key="425503913.1.222002"]`))
	b.waitText("history", "#messages", "合作")
	b.do("settle", chromedp.Sleep(300*time.Millisecond))
	write(t, filepath.Join(*screenshots, "inbox-phone.png"), screenshot(b))
}

// pngFile writes a small PNG and returns its path.
func pngFile(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = 0xfb
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pixel.png")
	write(t, path, buf.Bytes())
	return path
}

func screenshot(b *browser) []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	return png
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
