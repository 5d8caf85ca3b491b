package telegram

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/team"
)

// maxPhotoBytes bounds a photo downloaded from Telegram or Bilibili.
const maxPhotoBytes = 10 << 20

// maxUpdateAttempts is how often an update whose handling failed (the
// outbox unreachable) is tried before it is skipped.
const maxUpdateAttempts = 5

// Run long-polls getUpdates until ctx ends and turns messages from the
// allowed users into send commands.
//
// Durability: Run does not use the library's Start, which confirms an
// update to Telegram (by asking for the next offset) as soon as it is
// queued, before any handler ran. Run calls getUpdates itself with
// offset = last handled update + 1, handles the updates of a batch one at
// a time, in order, and records the last handled update_id in KV
// (tg.offset.<chat>) after each. So an update is confirmed only after it
// was handled, and a crash mid-batch means the unhandled updates come
// again (at least once). A send command's command_id is derived from the
// chat and message id ("tg-<chat>-<msg>"), so handling an update twice
// sends it to Bilibili once.
//
// Whatever getUpdates answers is handled, even below the recorded offset:
// Telegram never returns an update it considers confirmed, and after a
// week without updates it numbers them from a random, possibly lower, id
// (the Bot API then answers an offset past them from the oldest pending
// update). The next offset follows the last update handled, lower or not.
//
// Only one process may poll a bot: a second one gets 409 Conflict.
//
// With Config.WebhookURL set, Run instead registers the webhook
// (setWebhook with the secret token, message updates only, one connection
// at a time so that updates come in order) and waits for ctx to end;
// WebhookHandler then receives the updates. Without it, Run deletes any
// webhook left from webhook mode before polling.
func (s *Sink) Run(ctx context.Context) error {
	if s.cfg.WebhookURL != "" {
		return s.runWebhook(ctx)
	}
	if _, err := s.bot.DeleteWebhook(ctx, &bot.DeleteWebhookParams{}); err != nil && ctx.Err() == nil {
		s.log.Warn("deleteWebhook failed", "err", s.scrub(err))
	}
	offset := s.loadOffset(ctx)
	var backoff time.Duration
	s.log.Info("polling Telegram for replies", "offset", offset, "replies", s.repliesOn())
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		ups, err := s.getUpdates(ctx, offset+1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var tm *bot.TooManyRequestsError
			switch {
			case errors.As(err, &tm):
				backoff = time.Duration(tm.RetryAfter) * time.Second
			case errors.Is(err, bot.ErrorConflict):
				s.log.Warn("getUpdates conflict: a webhook is set or another process polls this bot", "err", err)
				_, _ = s.bot.DeleteWebhook(ctx, &bot.DeleteWebhookParams{})
				backoff = 5 * time.Second
			case errors.Is(err, bot.ErrorUnauthorized), errors.Is(err, bot.ErrorNotFound):
				s.log.Error("Telegram refused the bot token; replies stop until restart", "err", err)
				<-ctx.Done()
				return nil
			default:
				s.log.Warn("getUpdates failed", "err", err)
				backoff = min(max(2*backoff, time.Second), 30*time.Second)
			}
			continue
		}
		backoff = 0
		for _, u := range ups {
			if n, err := s.process(ctx, u, false); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				backoff = time.Duration(n) * 2 * time.Second
				break
			}
			offset = u.ID
		}
	}
	return nil
}

// process handles update u, one update at a time, for Run and
// WebhookHandler (hooked) alike, and records it once handled, or once it
// failed maxUpdateAttempts times (it is then skipped): polled, as the
// offset (tg.offset.<chat>) the next getUpdates starts from; hooked, in
// the set of update_ids handled recently (tg.updates.<chat>), and an
// update found there is not handled again. An error means "offer u again
// later"; failures is how often it failed so far.
func (s *Sink) process(ctx context.Context, u *models.Update, hooked bool) (failures int, err error) {
	s.updMu.Lock()
	defer s.updMu.Unlock()
	if hooked {
		seen, err := s.handledUpdate(ctx, u.ID)
		if err != nil {
			return 0, err
		}
		if seen {
			s.log.Debug("Telegram update handled already", "update", u.ID)
			return 0, nil
		}
	}
	if err := s.handleUpdate(ctx, u); err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		s.failures[u.ID]++
		if n := s.failures[u.ID]; n < maxUpdateAttempts {
			s.log.Warn("handling a Telegram update failed; will retry", "update", u.ID, "err", err)
			return n, err
		}
		s.log.Error("handling a Telegram update failed; skipping it", "update", u.ID, "err", err)
	}
	delete(s.failures, u.ID)
	if hooked {
		s.recordUpdate(ctx, u.ID)
	} else {
		s.saveOffset(ctx, u.ID)
	}
	return 0, nil
}

func (s *Sink) offsetKey() string { return "tg.offset." + s.chatTok }

func (s *Sink) loadOffset(ctx context.Context) int64 {
	e, err := s.cfg.State.Get(ctx, s.offsetKey())
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(e.Value()), 10, 64)
	return n
}

func (s *Sink) saveOffset(ctx context.Context, off int64) {
	if _, err := s.cfg.State.Put(context.WithoutCancel(ctx), s.offsetKey(), []byte(strconv.FormatInt(off, 10))); err != nil {
		s.log.Warn("could not record the Telegram offset; the update may be handled again", "err", err)
	}
}

// getUpdates is one long poll, made directly (the library has no exported
// getUpdates). Errors never hold the token.
func (s *Sink) getUpdates(ctx context.Context, offset int64) ([]*models.Update, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("offset", strconv.FormatInt(offset, 10))
	_ = w.WriteField("timeout", strconv.Itoa(int(s.cfg.PollTimeout/time.Second)))
	_ = w.WriteField("allowed_updates", `["message"]`)
	_ = w.Close()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PollTimeout+15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.apiURL+"/bot"+s.cfg.Token+"/getUpdates", &body)
	if err != nil {
		return nil, errors.New("telegram: building the getUpdates request failed")
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := s.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds the token
		}
		return nil, s.scrub(fmt.Errorf("getUpdates: %w", err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, s.scrub(fmt.Errorf("getUpdates: reading the answer: %w", err))
	}
	var r struct {
		OK          bool              `json:"ok"`
		Result      []json.RawMessage `json:"result"`
		ErrorCode   int               `json:"error_code"`
		Description string            `json:"description"`
		Parameters  struct {
			RetryAfter int `json:"retry_after"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("telegram: getUpdates: HTTP %d, not a Bot API answer", resp.StatusCode)
	}
	if !r.OK {
		switch r.ErrorCode {
		case http.StatusTooManyRequests:
			return nil, &bot.TooManyRequestsError{Message: "getUpdates: " + r.Description, RetryAfter: r.Parameters.RetryAfter}
		case http.StatusConflict:
			return nil, fmt.Errorf("%w, %s", bot.ErrorConflict, r.Description)
		case http.StatusUnauthorized:
			return nil, fmt.Errorf("%w, %s", bot.ErrorUnauthorized, r.Description)
		case http.StatusNotFound:
			return nil, fmt.Errorf("%w, %s", bot.ErrorNotFound, r.Description)
		}
		return nil, fmt.Errorf("telegram: getUpdates: %d %s", r.ErrorCode, r.Description)
	}
	out := make([]*models.Update, 0, len(r.Result))
	for _, item := range r.Result {
		u := &models.Update{}
		if err := json.Unmarshal(item, u); err != nil {
			// An update we cannot decode is still confirmed: take its id.
			var id struct {
				ID int64 `json:"update_id"`
			}
			_ = json.Unmarshal(item, &id)
			u = &models.Update{ID: id.ID}
			s.log.Warn("undecodable Telegram update skipped", "update", id.ID, "err", err)
		}
		out = append(out, u)
	}
	return out, nil
}

// repliesOn: replies have somewhere to go and someone who may send them
// (an allowed user, or members linked through the team inbox).
func (s *Sink) repliesOn() bool {
	return s.cfg.Outbox != nil && (len(s.allowed) > 0 || s.cfg.Team != nil)
}

// handleUpdate handles one update. An error means "try again later".
func (s *Sink) handleUpdate(ctx context.Context, u *models.Update) error {
	m := u.Message
	if m == nil || m.Chat.ID != s.cfg.ChatID {
		return nil
	}
	if m.From == nil || m.From.IsBot {
		return nil // channels, anonymous admins and bots (ourselves included)
	}
	if !userContent(m) {
		// A service message: a topic renamed, closed or reopened, a pin,
		// members joining… Telegram posts it in the member's name, but it
		// is nothing said to the talker, nor worth an answer.
		s.log.Debug("ignoring a service message", "message", m.ID, "user", m.From.ID)
		return nil
	}
	conv, err := s.route(ctx, m)
	if err != nil {
		return err
	}
	if cmd, to, ok := command(m.Text); ok {
		if to != "" {
			me, err := s.username(ctx)
			if err != nil {
				return err
			}
			if !strings.EqualFold(to, me) {
				s.log.Debug("ignoring a command for another bot", "message", m.ID, "bot", to)
				return nil
			}
		}
		return s.command(ctx, m, conv, cmd)
	}
	if conv == nil {
		return nil
	}
	if !s.repliesOn() {
		return s.sayRepliesOff(ctx, m)
	}
	if !s.mayAct(ctx, m.From.ID) {
		s.log.Debug("ignoring a message from a user who may not reply", "user", m.From.ID, "message", m.ID)
		return nil
	}
	origin := &events.Origin{Platform: "telegram", User: strconv.FormatInt(m.From.ID, 10), Ref: s.chatTok + ":" + strconv.Itoa(m.ID)}
	base := fmt.Sprintf("tg%s-%d", strings.ReplaceAll(s.chatTok, "-", "m"), m.ID)
	var cmds []events.SendCommand
	switch {
	case len(m.Photo) > 0:
		if s.cfg.FileProxyURL == "" {
			return s.reply(ctx, m, "⚠️ Photo replies are not set up on this bridge (no file proxy URL); send text instead.")
		}
		u, err := s.photoURL(ctx, m.Photo[len(m.Photo)-1].FileID)
		if err != nil {
			return err
		}
		cmds = append(cmds, events.SendCommand{CommandID: base + "-photo", ImageURL: u, Origin: origin})
		if strings.TrimSpace(m.Caption) != "" {
			cmds = append(cmds, events.SendCommand{CommandID: base, Text: m.Caption, Origin: origin})
		}
	case strings.TrimSpace(m.Text) != "":
		cmds = append(cmds, events.SendCommand{CommandID: base, Text: m.Text, Origin: origin})
	default:
		return s.reply(ctx, m, "⚠️ Only text and photos can be sent to Bilibili.")
	}
	for _, c := range cmds {
		_, err := s.cfg.Outbox.Submit(ctx, send.Request{AccountUID: conv.UID, SessionType: conv.SessionType, TalkerID: conv.TalkerID, Command: c}, 0)
		var ve *send.ValidationError
		if errors.As(err, &ve) {
			return s.reply(ctx, m, "❌ Not sent to Bilibili: "+ve.Reason)
		}
		if err != nil {
			return fmt.Errorf("telegram: queuing a reply: %w", err)
		}
		s.log.Info("reply queued", "command_id", c.CommandID, "conversation", conv.String(), "user", m.From.ID)
	}
	return nil
}

// route finds the conversation a message answers: its topic (forum), or
// the posted message it replies to (flat chat). Nil: none.
func (s *Sink) route(ctx context.Context, m *models.Message) (*conversation, error) {
	var kv jetstream.KeyValue
	var key string
	switch {
	case m.IsTopicMessage && m.MessageThreadID != 0:
		kv, key = s.cfg.State, "tg.thread."+s.chatTok+"."+strconv.Itoa(m.MessageThreadID)
	case m.ReplyToMessage != nil && m.ReplyToMessage.ForumTopicCreated == nil:
		// Not the topic-creation quirk: a real reply.
		kv, key = s.cfg.Records, s.convKey(m.ReplyToMessage.ID)
	default:
		return nil, nil
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("telegram: reading the conversation map: %w", err)
	}
	var c conversation
	var st int
	if _, err := fmt.Sscanf(string(e.Value()), "%d.%d.%d", &c.UID, &st, &c.TalkerID); err != nil {
		return nil, nil
	}
	c.SessionType = st
	return &c, nil
}

// userContent reports whether m carries something a member wrote or
// sent: text, or media of any kind (answered with "only text and photos"
// when not a photo). Everything else is a service message, including the
// kinds this library version does not know, which arrive empty.
func userContent(m *models.Message) bool {
	return m.Text != "" || len(m.Photo) > 0 || m.Animation != nil || m.Audio != nil || m.Document != nil ||
		m.PaidMedia != nil || m.Sticker != nil || m.Story != nil || m.Video != nil || m.VideoNote != nil ||
		m.Voice != nil || m.Checklist != nil || m.Contact != nil || m.Dice != nil || m.Game != nil ||
		m.Poll != nil || m.Venue != nil || m.Location != nil
}

// command parses "/name" or "/name@bot"; to is the bot, if named.
func command(text string) (name, to string, ok bool) {
	if !strings.HasPrefix(text, "/") {
		return "", "", false
	}
	f := strings.Fields(text)
	name, to, _ = strings.Cut(strings.TrimPrefix(f[0], "/"), "@")
	return strings.ToLower(name), to, true
}

// username is the bot's username, asked once (getMe): commands addressed
// to another bot ("/status@other_bot") are not ours.
func (s *Sink) username(ctx context.Context) (string, error) {
	s.meMu.Lock()
	defer s.meMu.Unlock()
	if s.me != "" {
		return s.me, nil
	}
	u, err := s.bot.GetMe(ctx)
	if err != nil {
		return "", s.scrub(fmt.Errorf("asking for the bot's username: %w", err))
	}
	s.me = u.Username
	return s.me, nil
}

func (s *Sink) command(ctx context.Context, m *models.Message, conv *conversation, cmd string) error {
	switch cmd {
	case "help", "start":
		return s.reply(ctx, m, helpText(s.repliesOn(), s.cfg.Team != nil))
	}
	// A team command is never a reply: /note stays in the chat.
	if a, ok, err := team.ParseCommand(m.Text, s.now(), s.cfg.Location); ok {
		return s.teamCommand(ctx, m, conv, a, err)
	}
	if !s.mayAct(ctx, m.From.ID) {
		s.log.Debug("ignoring a command from a user who is not allowed", "user", m.From.ID, "command", cmd)
		return nil
	}
	switch cmd {
	case "status":
		st := "Status is not available."
		if s.cfg.Status != nil {
			st = s.cfg.Status()
		}
		return s.reply(ctx, m, st)
	case "read":
		if conv == nil {
			return s.reply(ctx, m, "Use /read inside a conversation's topic (or as a reply to one of its messages).")
		}
		if s.cfg.MarkRead == nil {
			return s.reply(ctx, m, "Marking read is not available on this bridge.")
		}
		if err := s.cfg.MarkRead(ctx, conv.UID, conv.SessionType, conv.TalkerID); err != nil {
			s.log.Warn("/read failed", "conversation", conv.String(), "err", err)
			return s.reply(ctx, m, "❌ Could not mark the conversation read on Bilibili; try again later.")
		}
		return s.reply(ctx, m, "✔️ Marked read on Bilibili.")
	}
	return s.reply(ctx, m, "Unknown command. "+helpText(s.repliesOn(), s.cfg.Team != nil))
}

func helpText(replies, teamOn bool) string {
	h := "This chat is a Bilibili DM inbox: each conversation has its own topic (or, in a plain chat, a header naming the talker).\n"
	if replies {
		h += "Write in a conversation's topic (or reply to one of its messages) to answer on Bilibili: text and photos are sent. 👍 means sent; a failure is answered with the reason.\n"
	} else {
		h += "Replies to Bilibili are off on this bridge.\n"
	}
	h += "/status – login state, last good poll, queue depth\n/read – mark this conversation read on Bilibili\n/help – this text\n"
	if !teamOn {
		return h + "The team inbox is off on this bridge."
	}
	return h + "Team, in a conversation's topic: " + team.Commands + ". Notes stay in the team; the topic's name shows who answers and ✅ done (a done topic is closed until the next message)."
}

// sayRepliesOff posts, once per chat, that replies are off.
func (s *Sink) sayRepliesOff(ctx context.Context, m *models.Message) error {
	if _, err := s.cfg.State.Create(ctx, "tg.repliesoff."+s.chatTok, []byte("1")); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil
		}
		return fmt.Errorf("telegram: %w", err)
	}
	return s.reply(ctx, m, "ℹ️ Replies to Bilibili are off on this bridge (TELEGRAM_ALLOWED_USERS is empty), so messages written here are not sent. This note is shown once.")
}

// reply answers m in its topic, in plain text (escaped).
func (s *Sink) reply(ctx context.Context, m *models.Message, text string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	thread := 0
	if m.IsTopicMessage {
		thread = m.MessageThreadID
	}
	_, err := s.bot.SendMessage(ctx, &bot.SendMessageParams{ChatID: s.cfg.ChatID, MessageThreadID: thread, Text: esc(text),
		ParseMode: models.ParseModeHTML, ReplyParameters: &models.ReplyParameters{MessageID: m.ID, AllowSendingWithoutReply: true}})
	if err != nil {
		var tm *bot.TooManyRequestsError
		if errors.As(err, &tm) {
			return s.scrub(err) // retried by Run
		}
		s.log.Warn("could not answer in the chat", "err", s.scrub(err))
	}
	return nil
}

// fileRecord is a photo reply served by FileHandler.
type fileRecord struct {
	FileID  string    `json:"file_id"`
	Expires time.Time `json:"expires"`
}

// photoURL records the photo under a random id and returns its proxy URL.
func (s *Sink) photoURL(ctx context.Context, fileID string) (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	// In Records: FileTTL (a day by default) is far shorter than the
	// bucket's life, and the record is useless once expired anyway.
	if err := s.saveJSON(ctx, s.cfg.Records, "tg.file."+id, fileRecord{FileID: fileID, Expires: s.now().Add(s.cfg.FileTTL)}); err != nil {
		return "", fmt.Errorf("telegram: recording a photo reply: %w", err)
	}
	return s.cfg.FileProxyURL + "/" + id, nil
}

// FileHandler serves the photos of photo replies at <FileProxyURL>/<id>
// (GET; the last path segment is the id): it asks Telegram for the file
// and streams it, so the sender downloads it from the bridge and the
// Telegram file URL, which holds the bot token, stays in this process.
// Ids are random (144 bits) and expire after FileTTL.
func (s *Sink) FileHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		id := path.Base(r.URL.Path)
		if len(id) != 24 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			http.NotFound(w, r)
			return
		}
		e, err := s.cfg.Records.Get(r.Context(), "tg.file."+id)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		var rec fileRecord
		if json.Unmarshal(e.Value(), &rec) != nil || s.now().After(rec.Expires) {
			http.NotFound(w, r)
			return
		}
		f, err := s.bot.GetFile(r.Context(), &bot.GetFileParams{FileID: rec.FileID})
		if err != nil {
			s.log.Warn("getFile failed for a photo reply", "err", s.scrub(err))
			http.Error(w, "the file is not available", http.StatusBadGateway)
			return
		}
		// The Bot API itself, on the normal client: the URL is ours.
		data, _, err := s.download(r.Context(), s.http, s.apiURL+"/file/bot"+s.cfg.Token+"/"+f.FilePath)
		if err != nil {
			s.log.Warn("downloading a photo reply from Telegram failed", "err", err)
			http.Error(w, "the file is not available", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", http.DetectContentType(data))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(data)
	})
}

// download GETs u with client (at most maxPhotoBytes). Errors never hold
// the URL.
func (s *Sink) download(ctx context.Context, client *http.Client, u string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", errors.New("telegram: bad image URL")
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", s.scrub(fmt.Errorf("downloading an image: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("telegram: downloading an image: HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPhotoBytes+1))
	if err != nil {
		return nil, "", s.scrub(fmt.Errorf("downloading an image: %w", err))
	}
	if len(data) > maxPhotoBytes {
		return nil, "", errors.New("telegram: the image is larger than 10 MiB")
	}
	name := path.Base(req.URL.Path)
	if name == "" || name == "/" || name == "." {
		name = "image"
	}
	return data, name, nil
}
