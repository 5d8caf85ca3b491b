package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/team"
)

// Text commands typed in a conversation thread.
const (
	CommandStatus = "/status"
	CommandRead   = "/read"
	// NotePrefix starts a remark for the thread only: a message not sent
	// to Bilibili, nor kept in the team inbox (/note is).
	NotePrefix = "//"
)

// Run connects to the gateway and turns messages typed in conversation
// threads into send commands until ctx ends. discordgo reconnects and
// resumes on its own once connected; Run retries the first connection
// with backoff. It returns nil when ctx ends, and when Discord refused the
// token (logged: Deliver disables the sink for the same reason).
func (s *Sink) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	removeReady := s.dg.AddHandler(func(_ *discordgo.Session, r *discordgo.Ready) {
		if r.User != nil {
			s.mu.Lock()
			s.botUser = r.User.ID
			s.mu.Unlock()
		}
		s.log.Info("discord: gateway connected")
	})
	defer removeReady()
	var hmu sync.Mutex
	closed := false
	removeMsg := s.dg.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) {
		hmu.Lock()
		if closed || m.Message == nil {
			hmu.Unlock()
			return
		}
		wg.Add(1)
		hmu.Unlock()
		defer wg.Done()
		s.onMessage(ctx, m.Message)
	})
	defer func() {
		removeMsg()
		hmu.Lock()
		closed = true
		hmu.Unlock()
		wg.Wait()
	}()

	backoff := time.Second
	for {
		err := s.dg.Open()
		if err == nil {
			break
		}
		var ce *websocket.CloseError
		if status, _ := apiStatus(err); status == http.StatusUnauthorized || status == http.StatusForbidden ||
			(errors.As(err, &ce) && (ce.Code == 4004 || ce.Code == 4014)) {
			s.log.Error("discord: the gateway refused the bot token or the intents (enable the Message Content intent in the Developer Portal); replies from Discord are off", "err", s.classify("connecting to the gateway", err))
			return nil
		}
		s.log.Warn("discord: connecting to the gateway", "err", s.classify("connecting to the gateway", err), "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Minute)
	}
	<-ctx.Done()
	if err := s.dg.Close(); err != nil {
		s.log.Debug("discord: closing the gateway", "err", err)
	}
	return nil
}

// onMessage handles one MESSAGE_CREATE.
func (s *Sink) onMessage(ctx context.Context, m *discordgo.Message) {
	if m.Author == nil || m.Author.Bot || m.WebhookID != "" {
		return
	}
	switch m.Type {
	case discordgo.MessageTypeDefault, discordgo.MessageTypeReply:
	default:
		// What Discord posts for an action, in the user's name: a thread
		// renamed (the content is the new name), a pin, someone added to
		// the thread… Nothing said to the talker.
		s.log.Debug("discord: ignoring a service message", "thread", m.ChannelID, "message", m.ID, "type", int(m.Type))
		return
	}
	s.mu.Lock()
	self := s.botUser
	s.mu.Unlock()
	if m.Author.ID == self {
		return
	}
	conv, err := s.convOfThread(ctx, m.ChannelID)
	if err != nil {
		s.log.Warn("discord: looking up a thread", "err", err)
		return
	}
	if conv == nil {
		return // not a conversation thread of this channel
	}
	log := s.log.With("thread", m.ChannelID, "message", m.ID, "user", m.Author.ID)
	// A linked member may act whatever the allowlists say.
	name, linked := s.member(ctx, m.Author.ID)
	if !linked && !s.allowed(ctx, m) {
		log.Debug("discord: message from a user who may not reply; ignored")
		return
	}
	text := strings.TrimSpace(m.Content)
	if strings.HasPrefix(text, NotePrefix) {
		return
	}
	// A team command is never a reply: /note stays in the thread.
	if a, ok, perr := team.ParseCommand(text, s.cfg.Now(), s.cfg.Location); ok {
		s.teamCommand(ctx, m, conv, a, perr, name, linked)
		return
	}
	switch strings.ToLower(text) {
	case CommandStatus:
		s.commandStatus(ctx, m)
		return
	case CommandRead:
		s.commandRead(ctx, m, conv)
		return
	case CommandHelp:
		s.tell(ctx, m, helpText(s.cfg.Team != nil))
		return
	}
	outbox := s.cfg.Outbox
	if outbox == nil {
		log.Debug("discord: replies are off; message not sent")
		return
	}
	origin := &events.Origin{Platform: Platform, User: m.Author.ID, Ref: m.ChannelID + ":" + m.ID}
	var cmds []events.SendCommand
	if text != "" {
		cmds = append(cmds, events.SendCommand{CommandID: "discord-" + m.ID, Text: text, Origin: origin})
	}
	var skipped []string
	for i, a := range m.Attachments {
		if !isImage(a) {
			skipped = append(skipped, a.Filename)
			continue
		}
		cmds = append(cmds, events.SendCommand{CommandID: fmt.Sprintf("discord-%s-%d", m.ID, i+1), ImageURL: a.URL, Origin: origin})
	}
	if len(skipped) > 0 {
		s.tell(ctx, m, "Only text and images can be sent to Bilibili; not sent: "+strings.Join(skipped, ", "))
	}
	for _, cmd := range cmds {
		_, err := outbox.Submit(ctx, send.Request{AccountUID: conv.AccountUID, SessionType: conv.SessionType, TalkerID: conv.TalkerID, Command: cmd}, 0)
		var ve *send.ValidationError
		switch {
		case errors.As(err, &ve):
			s.tell(ctx, m, "❌ Not sent to Bilibili: "+ve.Reason)
		case err != nil:
			log.Warn("discord: queuing a reply", "err", err)
			s.tell(ctx, m, "❌ Not sent to Bilibili: the bridge could not queue it. Try again in a moment.")
		default:
			log.Info("discord: reply queued", "command_id", cmd.CommandID)
		}
	}
}

// isImage reports whether an attachment is an image Bilibili can take.
func isImage(a *discordgo.MessageAttachment) bool {
	if a == nil || a.URL == "" {
		return false
	}
	if strings.HasPrefix(a.ContentType, "image/") {
		return true
	}
	switch strings.ToLower(path.Ext(a.Filename)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".webp":
		return true
	}
	return false
}

// allowed reports whether the author may reply: an allowed user, or a
// member with an allowed role (roles from the event, or asked for).
func (s *Sink) allowed(ctx context.Context, m *discordgo.Message) bool {
	if s.users[m.Author.ID] {
		return true
	}
	if len(s.roles) == 0 || m.GuildID == "" {
		return false
	}
	var roles []string
	if m.Member != nil && m.Member.Roles != nil {
		roles = m.Member.Roles
	} else {
		mem, err := s.dg.GuildMember(m.GuildID, m.Author.ID, opts(ctx)...)
		if err != nil {
			s.log.Warn("discord: reading a member's roles", "err", s.classify("reading a member", err))
			return false
		}
		roles = mem.Roles
	}
	for _, r := range roles {
		if s.roles[r] {
			return true
		}
	}
	return false
}

// tell replies to m, logging a failure.
func (s *Sink) tell(ctx context.Context, m *discordgo.Message, text string) {
	if err := s.reply(ctx, m.ChannelID, m.ID, text); err != nil {
		s.log.Warn("discord: replying", "err", err)
	}
}

func (s *Sink) commandStatus(ctx context.Context, m *discordgo.Message) {
	if s.cfg.Status == nil {
		s.tell(ctx, m, "Status is not available.")
		return
	}
	s.tell(ctx, m, s.cfg.Status())
}

func (s *Sink) commandRead(ctx context.Context, m *discordgo.Message, conv *conversation) {
	if s.cfg.MarkRead == nil {
		s.tell(ctx, m, "Marking read is not available.")
		return
	}
	if conv.Seqno == 0 {
		s.tell(ctx, m, "Nothing to mark read yet.")
		return
	}
	if err := s.cfg.MarkRead(ctx, conv.AccountUID, conv.SessionType, conv.TalkerID, conv.Seqno); err != nil {
		s.tell(ctx, m, "❌ Could not mark the conversation read: "+err.Error())
		return
	}
	if err := s.inThread(ctx, m.ChannelID, "marking read", func() error {
		return s.dg.MessageReactionAdd(m.ChannelID, m.ID, "✅", opts(ctx)...)
	}); err != nil {
		s.log.Warn("discord: reacting", "err", err)
	}
}
