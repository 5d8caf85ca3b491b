package telegramtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/bilibridge/bilibridge/sinks/telegram/telegramtest"
)

const forum int64 = -1001234567890

func newBot(t *testing.T, s *telegramtest.Server) *bot.Bot {
	t.Helper()
	// Without WithSkipGetMe: New calls getMe with an empty multipart body.
	b, err := bot.New(s.Token, bot.WithServerURL(s.URL), bot.WithHTTPClient(5*time.Second, s.Client()),
		bot.WithDefaultHandler(func(context.Context, *bot.Bot, *models.Update) {}))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFakeWireFormat(t *testing.T) {
	s := telegramtest.NewServer(t)
	s.AddChat(telegramtest.Chat{ID: forum, Title: "inbox", IsForum: true})
	b := newBot(t, s)
	ctx := context.Background()

	tp, err := b.CreateForumTopic(ctx, &bot.CreateForumTopicParams{ChatID: forum, Name: "someone · 1"})
	if err != nil {
		t.Fatal(err)
	}
	// The library's own button type always carries an empty copy_text.
	_, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, MessageThreadID: tp.MessageThreadID, Text: "x",
		ReplyMarkup: &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{{Text: "open", URL: "https://b23.tv/x"}}}}})
	if err == nil || !strings.Contains(err.Error(), "BUTTON_COPY_TEXT_INVALID") {
		t.Errorf("library button: %v", err)
	}
	m, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, MessageThreadID: tp.MessageThreadID,
		Text: "<b>a &amp; b</b>", ParseMode: models.ParseModeHTML,
		ReplyMarkup: map[string]any{"inline_keyboard": [][]map[string]string{{{"text": "open", "url": "https://b23.tv/x"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsTopicMessage || m.MessageThreadID != tp.MessageThreadID {
		t.Errorf("sent message = %+v", m)
	}
	// Bad HTML is refused as Telegram does.
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, Text: "a < b", ParseMode: models.ParseModeHTML}); !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), "can't parse entities") {
		t.Errorf("unescaped '<': %v", err)
	}
	// 429 with retry_after.
	s.FailNext("sendMessage", 1, telegramtest.TooManyRequests(7))
	_, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, Text: "x"})
	var tm *bot.TooManyRequestsError
	if !errors.As(err, &tm) || tm.RetryAfter != 7 {
		t.Errorf("429: %v", err)
	}
	// Deleted and closed topics.
	s.CloseTopic(forum, tp.MessageThreadID)
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, MessageThreadID: tp.MessageThreadID, Text: "x"}); err == nil || !strings.Contains(err.Error(), "TOPIC_CLOSED") {
		t.Errorf("closed topic: %v", err)
	}
	if ok, err := b.ReopenForumTopic(ctx, &bot.ReopenForumTopicParams{ChatID: forum, MessageThreadID: tp.MessageThreadID}); !ok || err != nil {
		t.Errorf("reopen: %v", err)
	}
	s.DeleteTopic(forum, tp.MessageThreadID)
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, MessageThreadID: tp.MessageThreadID, Text: "x"}); err == nil || !strings.Contains(err.Error(), "message thread not found") {
		t.Errorf("deleted topic: %v", err)
	}
	// Reactions: only Telegram's set.
	if _, err := b.SetMessageReaction(ctx, &bot.SetMessageReactionParams{ChatID: forum, MessageID: m.ID,
		Reaction: []models.ReactionType{{Type: models.ReactionTypeTypeEmoji, ReactionTypeEmoji: &models.ReactionTypeEmoji{Emoji: "✅"}}}}); err == nil {
		t.Error("✅ accepted as a reaction")
	}
	if _, err := b.SetMessageReaction(ctx, &bot.SetMessageReactionParams{ChatID: forum, MessageID: m.ID,
		Reaction: []models.ReactionType{{Type: models.ReactionTypeTypeEmoji, ReactionTypeEmoji: &models.ReactionTypeEmoji{Emoji: "👍"}}}}); err != nil {
		t.Error(err)
	}
	if got, _ := s.Message(forum, m.ID); len(got.Reactions) != 1 || got.Reactions[0] != "👍" {
		t.Errorf("reactions = %v", got.Reactions)
	}
	// Upload, and URL fetch failure.
	s.FailURL("https://i0.hdslb.com/bfs/x.png")
	if _, err := b.SendPhoto(ctx, &bot.SendPhotoParams{ChatID: forum, Photo: &models.InputFileString{Data: "https://i0.hdslb.com/bfs/x.png"}}); err == nil || !strings.Contains(err.Error(), "failed to get HTTP URL content") {
		t.Errorf("bad URL: %v", err)
	}
	if _, err := b.SendPhoto(ctx, &bot.SendPhotoParams{ChatID: forum, Photo: &models.InputFileUpload{Filename: "x.png", Data: bytes.NewReader([]byte("PNGDATA"))}}); err != nil {
		t.Fatal(err)
	}
	sent := s.Sent(forum)
	if last := sent[len(sent)-1]; string(last.PhotoUpload) != "PNGDATA" {
		t.Errorf("upload = %q", last.PhotoUpload)
	}
	// Kicked: 403.
	s.SetKicked(forum, true)
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, Text: "x"}); !errors.Is(err, bot.ErrorForbidden) {
		t.Errorf("kicked: %v", err)
	}
}

func TestFakeUpdatesAndFiles(t *testing.T) {
	s := telegramtest.NewServer(t)
	s.AddChat(telegramtest.Chat{ID: forum, Title: "inbox", IsForum: true})
	b := newBot(t, s)
	ctx := context.Background()
	tp, err := b.CreateForumTopic(ctx, &bot.CreateForumTopicParams{ChatID: forum, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	alice := telegramtest.User{ID: 42, FirstName: "Alice"}
	s.UserMessage(forum, tp.MessageThreadID, alice, "hello")
	s.UserPhoto(forum, tp.MessageThreadID, 0, alice, []byte("\x89PNG\r\n\x1a\nrest"), "cap")

	got := make(chan *models.Update, 10)
	b2, err := bot.New(s.Token, bot.WithServerURL(s.URL), bot.WithSkipGetMe(), bot.WithHTTPClient(2*time.Second, s.Client()),
		bot.WithDefaultHandler(func(_ context.Context, _ *bot.Bot, u *models.Update) { got <- u }), bot.WithNotAsyncHandlers())
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go b2.Start(cctx)
	u1, u2 := <-got, <-got
	if m := u1.Message; m.Text != "hello" || !m.IsTopicMessage || m.ReplyToMessage == nil || m.ReplyToMessage.ForumTopicCreated == nil {
		t.Errorf("topic message = %+v", m)
	}
	ph := u2.Message.Photo
	f, err := b.GetFile(ctx, &bot.GetFileParams{FileID: ph[len(ph)-1].FileID})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(b.FileDownloadLink(f))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Errorf("download: %d %q", resp.StatusCode, data)
	}
	// The library confirms updates by asking for the next offset.
	deadline := time.Now().Add(5 * time.Second)
	for s.PendingUpdates() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.PendingUpdates() != 0 || s.Confirmed() != u2.ID {
		t.Errorf("pending %d, confirmed %d, want %d", s.PendingUpdates(), s.Confirmed(), u2.ID)
	}
}

// TestFakeDropAndHold: a dropped call fails without posting anything; a
// held one waits until released, then answers its fault.
func TestFakeDropAndHold(t *testing.T) {
	s := telegramtest.NewServer(t)
	s.AddChat(telegramtest.Chat{ID: forum, Title: "inbox"})
	b := newBot(t, s)
	ctx := context.Background()

	s.FailNext("sendMessage", 1, telegramtest.Dropped())
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, Text: "lost"}); err == nil {
		t.Fatal("a dropped call succeeded")
	}
	hold := make(chan struct{})
	s.FailNext("sendMessage", 1, telegramtest.Fault{Hold: hold, Code: 500, Description: "Internal Server Error"})
	done := make(chan error, 1)
	go func() {
		_, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: forum, Text: "held"})
		done <- err
	}()
	for s.CallCount("sendMessage") < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a held call answered before its release: %v", err)
	default:
	}
	close(hold)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "Internal Server Error") {
		t.Errorf("held call: %v", err)
	}
	if n := len(s.Sent(forum)); n != 0 {
		t.Errorf("%d messages posted by failed calls", n)
	}
}

// getUpdates polls the fake once with offset, as a client would.
func getUpdates(t *testing.T, s *telegramtest.Server, offset int64) []int64 {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("offset", strconv.FormatInt(offset, 10))
	_ = w.WriteField("timeout", "0")
	_ = w.Close()
	resp, err := s.Client().Post(s.URL+"/bot"+s.Token+"/getUpdates", w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		OK     bool `json:"ok"`
		Result []struct {
			ID int64 `json:"update_id"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || !r.OK {
		t.Fatalf("getUpdates: ok %v, %v", r.OK, err)
	}
	var ids []int64
	for _, u := range r.Result {
		ids = append(ids, u.ID)
	}
	return ids
}

// TestFakeUpdateIDsRestartLower: after a quiet week Telegram numbers
// updates from a random, possibly lower, id; an offset past them is
// ignored (the Bot API answers from the oldest pending update), and the
// next offset confirms them as usual.
func TestFakeUpdateIDsRestartLower(t *testing.T) {
	s := telegramtest.NewServer(t)
	s.AddChat(telegramtest.Chat{ID: forum, Title: "inbox"})
	alice := telegramtest.User{ID: 42, FirstName: "Alice"}
	s.UserMessage(forum, 0, alice, "before")
	first := getUpdates(t, s, 0)
	if len(first) != 1 {
		t.Fatalf("updates = %v", first)
	}
	if got := getUpdates(t, s, first[0]+1); len(got) != 0 || s.Confirmed() != first[0] {
		t.Fatalf("after confirming: %v, confirmed %d", got, s.Confirmed())
	}
	s.RestartUpdateIDs(5)
	s.UserMessage(forum, 0, alice, "after a quiet week")
	if got := getUpdates(t, s, first[0]+1); len(got) != 1 || got[0] != 5 {
		t.Fatalf("with the old offset: %v, want [5]", got)
	}
	if got := getUpdates(t, s, 6); len(got) != 0 || s.Confirmed() != 5 || s.PendingUpdates() != 0 {
		t.Errorf("after confirming 5: %v, confirmed %d, %d pending", got, s.Confirmed(), s.PendingUpdates())
	}
}
