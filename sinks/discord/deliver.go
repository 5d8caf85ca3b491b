package discord

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/bwmarrin/discordgo"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
)

// Discord JSON error codes the sink acts on.
const (
	codeUnknownChannel = 10003
	codeUnknownMessage = 10008
	codeUnknownWebhook = 10015
	codeThreadArchived = 50083
	codeInvalidForm    = 50035
)

// maxRecoveries bounds how often one delivery recreates a thread or the
// webhook, or unarchives a thread.
const maxRecoveries = 3

// Deliver posts one event: a message or a recall in its conversation's
// thread, a send result on the Discord message it came from, an account
// status in the channel. It is one attempt; the runtime retries.
func (s *Sink) Deliver(ctx context.Context, ev events.Event) error {
	switch ev.Type {
	case events.TypeMessage:
		var d events.MessageData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverMessage(ctx, ev.ID, &d)
	case events.TypeRecall:
		var d events.RecallData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverRecall(ctx, &d)
	case events.TypeSendSucceeded, events.TypeSendFailed:
		var d events.SendResultData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverResult(ctx, ev.ID, ev.Type == events.TypeSendSucceeded, &d)
	case events.TypeAccountStatus:
		var d events.AccountStatusData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverStatus(ctx, &d)
	case events.TypeTeamAssigned:
		var d events.AssignedData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverTeamState(ctx, d.TeamBase, func(r *threadRec) {
			r.Assignee = ""
			if d.Assignee != nil {
				r.Assignee = *d.Assignee
			}
		})
	case events.TypeTeamStatus:
		var d events.StatusData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverTeamState(ctx, d.TeamBase, func(r *threadRec) { r.Status = d.Status })
	case events.TypeTeamNote:
		var d events.NoteData
		if err := ev.DecodeData(&d); err != nil {
			return sinks.Permanent(err)
		}
		return s.deliverNote(ctx, ev.ID, &d)
	}
	// team.read and anything newer: nothing to show.
	return nil
}

// lockConv serialises work on one conversation's thread (the runtime
// already does; Run's commands and a second caller may not).
func (s *Sink) lockConv(key string) func() {
	s.mu.Lock()
	m, ok := s.convMu[key]
	if !ok {
		m = &sync.Mutex{}
		s.convMu[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (s *Sink) deliverMessage(ctx context.Context, eventID string, d *events.MessageData) error {
	conv := convOf(d.AccountUID, d.Conversation)
	unlock := s.lockConv(s.threadKey(conv))
	defer unlock()

	var rec postedRec
	found, err := s.load(ctx, s.records, s.msgKey(eventID), &rec)
	if err != nil {
		return err
	}
	if found && rec.done() {
		return nil // delivered before (a redelivery)
	}
	if !found && d.Message.Direction == events.DirectionOut {
		var echo struct{}
		if seen, err := s.load(ctx, s.records, echoKey(d.AccountUID, strconv.FormatUint(d.Message.MsgKey, 10)), &echo); err != nil {
			return err
		} else if seen {
			return nil // typed in Discord: the thread shows it already
		}
	}
	parts := render(d)
	thread := rec.ThreadID
	if !found || thread == "" {
		if thread, err = s.thread(ctx, conv); err != nil {
			return err
		}
		rec = postedRec{ThreadID: thread, Parts: len(parts)}
	}
	if rec.Parts != len(parts) {
		rec.Parts = len(parts) // rendering changed between attempts
	}
	recoveries := 0
	for i := len(rec.MessageIDs); i < len(parts); {
		hook, err := s.webhook(ctx)
		if err != nil {
			return err
		}
		msg, err := s.dg.WebhookThreadExecute(hook.ID, hook.Token, true, rec.ThreadID, parts[i], opts(ctx)...)
		if err == nil {
			rec.MessageIDs = append(rec.MessageIDs, msg.ID)
			if i == 0 {
				rec.Content = parts[i].Content
			}
			if err := s.store(ctx, s.records, s.msgKey(eventID), &rec); err != nil {
				return err
			}
			i++
			continue
		}
		status, code := apiStatus(err)
		if recoveries >= maxRecoveries {
			return s.classify("posting a message", err)
		}
		recoveries++
		switch {
		case status == http.StatusNotFound && code == codeUnknownChannel:
			// The thread was deleted: a new one gets the rest.
			s.log.Info("discord: conversation thread is gone; creating a new one", "thread", rec.ThreadID)
			s.dropThread(ctx, conv, rec.ThreadID)
			if rec.ThreadID, err = s.createThread(ctx, conv); err != nil {
				return err
			}
		case status == http.StatusBadRequest && code == codeThreadArchived:
			if err := s.unarchive(ctx, rec.ThreadID); err != nil {
				return err
			}
		case status == http.StatusNotFound && code == codeUnknownWebhook:
			s.dropWebhook(ctx, hook)
		case status == http.StatusBadRequest && len(parts[i].Embeds) > 0:
			// An embed Discord refused (a URL it does not like): the
			// text alone is better than a dead letter.
			s.log.Warn("discord: embed refused; posting the message without it", "err", s.classify("posting a message", err))
			parts[i] = plain(parts[i], d)
		default:
			return s.classify("posting a message", err)
		}
	}
	s.noteSeqno(ctx, conv, rec.ThreadID, d.Message.Seqno)
	return nil
}

// noteSeqno records the highest seqno posted in a thread, for "/read".
func (s *Sink) noteSeqno(ctx context.Context, conv conversation, thread string, seqno uint64) {
	if s.cfg.MarkRead == nil || seqno == 0 {
		return
	}
	c, err := s.convOfThread(ctx, thread)
	if err != nil || c == nil || c.Seqno >= seqno {
		return
	}
	n := *c
	n.Seqno = seqno
	if err := s.store(ctx, s.state, s.convKey(thread), &n); err != nil {
		s.log.Warn("discord: recording seqno", "err", err)
		return
	}
	s.mu.Lock()
	s.convs[thread] = &n
	s.mu.Unlock()
}

// thread returns the conversation's thread, creating it the first time and
// checking it (unarchiving, or recreating a deleted one) the first time
// this process uses it.
func (s *Sink) thread(ctx context.Context, conv conversation) (string, error) {
	key := s.threadKey(conv)
	s.mu.Lock()
	id, ok := s.threads[key]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	var rec threadRec
	found, err := s.load(ctx, s.state, key, &rec)
	if err != nil {
		return "", err
	}
	if !found || rec.ThreadID == "" {
		return s.createThread(ctx, conv)
	}
	ch, err := s.dg.Channel(rec.ThreadID, opts(ctx)...)
	if err != nil {
		if status, code := apiStatus(err); status == http.StatusNotFound && code == codeUnknownChannel {
			s.log.Info("discord: conversation thread is gone; creating a new one", "thread", rec.ThreadID)
			s.dropThread(ctx, conv, rec.ThreadID)
			return s.createThread(ctx, conv)
		}
		return "", s.classify("reading the conversation thread", err)
	}
	if ch.ThreadMetadata != nil && ch.ThreadMetadata.Archived {
		if err := s.unarchive(ctx, ch.ID); err != nil {
			return "", err
		}
	}
	s.remember(key, rec.ThreadID, conv)
	return rec.ThreadID, nil
}

func (s *Sink) remember(key, thread string, conv conversation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.threads[key] = thread
	if _, ok := s.convs[thread]; !ok {
		c := conv
		s.convs[thread] = &c
	}
}

func (s *Sink) unarchive(ctx context.Context, thread string) error {
	no := false
	if _, err := s.dg.ChannelEdit(thread, &discordgo.ChannelEdit{Archived: &no}, opts(ctx)...); err != nil {
		return s.classify("unarchiving the conversation thread", err)
	}
	s.log.Info("discord: unarchived a conversation thread", "thread", thread)
	return nil
}

// dropThread forgets a deleted thread. The team state recorded with it
// stays, for the thread made next.
func (s *Sink) dropThread(ctx context.Context, conv conversation, thread string) {
	s.mu.Lock()
	delete(s.threads, s.threadKey(conv))
	delete(s.convs, thread)
	s.mu.Unlock()
	var rec threadRec
	if found, err := s.load(ctx, s.state, s.threadKey(conv), &rec); err == nil && found && rec.hasTeamState() {
		if err := s.store(ctx, s.state, s.threadKey(conv), &threadRec{Assignee: rec.Assignee, Status: rec.Status}); err != nil {
			s.log.Warn("discord: keeping the team state of a deleted thread", "err", err)
		}
	} else {
		s.forget(ctx, s.threadKey(conv))
	}
	s.forget(ctx, s.convKey(thread))
}

// parentChannel reads the configured channel once.
func (s *Sink) parentChannel(ctx context.Context) (*discordgo.Channel, error) {
	s.mu.Lock()
	p := s.parent
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	ch, err := s.dg.Channel(s.channel, opts(ctx)...)
	if err != nil {
		return nil, s.classify("reading channel "+s.channel, err)
	}
	if ch.Type != discordgo.ChannelTypeGuildText && ch.Type != discordgo.ChannelTypeGuildForum && ch.Type != discordgo.ChannelTypeGuildNews {
		return nil, sinks.Disabled(fmt.Errorf("discord: channel %s is neither a text nor a forum channel (type %d)", s.channel, ch.Type))
	}
	s.mu.Lock()
	s.parent = ch
	s.mu.Unlock()
	return ch, nil
}

// threadName is "name · uid" (with "→ account" when the bridge serves
// several accounts), marked with the team state (see teamPrefix), at
// most 100 characters; the talker's id is kept whole.
func threadName(conv conversation, multiAccount bool, assignee, status string) string {
	suffix := " · " + strconv.FormatUint(conv.TalkerID, 10)
	if multiAccount {
		suffix += " → " + strconv.FormatInt(conv.AccountUID, 10)
	}
	name := strings.Join(strings.Fields(conv.Name), " ")
	if name == "" {
		name = "Bilibili"
	}
	prefix := sinks.TeamPrefix(assignee, status)
	return prefix + truncate(name, maxThreadName-len([]rune(prefix))-len([]rune(suffix))) + suffix
}

// createThread starts a thread (a post, in a forum) for a conversation,
// named with the team state recorded for it, and records it both ways.
func (s *Sink) createThread(ctx context.Context, conv conversation) (string, error) {
	parent, err := s.parentChannel(ctx)
	if err != nil {
		return "", err
	}
	key := s.threadKey(conv)
	var rec threadRec
	if _, err := s.load(ctx, s.state, key, &rec); err != nil {
		return "", err
	}
	name := threadName(conv, s.cfg.MultiAccount, rec.Assignee, rec.Status)
	var ch *discordgo.Channel
	if parent.Type == discordgo.ChannelTypeGuildForum {
		ch, err = s.dg.ForumThreadStartComplex(s.channel,
			&discordgo.ThreadStart{Name: name, AutoArchiveDuration: archiveMinutes},
			&discordgo.MessageSend{Content: header(conv), AllowedMentions: noMentions()}, opts(ctx)...)
	} else {
		typ := discordgo.ChannelTypeGuildPublicThread
		if parent.Type == discordgo.ChannelTypeGuildNews {
			typ = discordgo.ChannelTypeGuildNewsThread
		}
		ch, err = s.dg.ThreadStartComplex(s.channel,
			&discordgo.ThreadStart{Name: name, AutoArchiveDuration: archiveMinutes, Type: typ}, opts(ctx)...)
	}
	if err != nil {
		return "", s.classify("creating a conversation thread", err)
	}
	if err := s.store(ctx, s.state, s.convKey(ch.ID), &conv); err != nil {
		return "", err
	}
	rec.ThreadID, rec.Name = ch.ID, name
	if err := s.store(ctx, s.state, key, &rec); err != nil {
		return "", err
	}
	s.remember(key, ch.ID, conv)
	s.log.Info("discord: conversation thread created", "thread", ch.ID, "session_type", conv.SessionType, "talker", conv.TalkerID)
	return ch.ID, nil
}

// header is the first message of a forum post.
func header(conv conversation) string {
	kind := "user"
	if conv.SessionType == 2 {
		kind = "fan group"
	}
	return truncate(fmt.Sprintf("Bilibili conversation with %s (%s %d). Replies typed here by allowed members are sent to Bilibili; start a message with // for a remark that is not sent; /help lists the commands.",
		escapeMarkdown(conv.Name), kind, conv.TalkerID), maxContent)
}

// webhook returns the channel webhook the sink posts with: recorded,
// found among the channel's webhooks, or created.
func (s *Sink) webhook(ctx context.Context) (*webhookRec, error) {
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h != nil {
		return h, nil
	}
	var rec webhookRec
	found, err := s.load(ctx, s.state, s.webhookKey(), &rec)
	if err != nil {
		return nil, err
	}
	if !found || rec.ID == "" || rec.Token == "" {
		hooks, err := s.dg.ChannelWebhooks(s.channel, opts(ctx)...)
		if err != nil {
			return nil, s.classify("listing the channel's webhooks", err)
		}
		rec = webhookRec{}
		for _, w := range hooks {
			if w.Name == WebhookName && w.Token != "" {
				rec = webhookRec{ID: w.ID, Token: w.Token}
				break
			}
		}
		if rec.ID == "" {
			w, err := s.dg.WebhookCreate(s.channel, WebhookName, "", opts(ctx)...)
			if err != nil {
				return nil, s.classify("creating the channel webhook", err)
			}
			rec = webhookRec{ID: w.ID, Token: w.Token}
			s.log.Info("discord: channel webhook created", "webhook", w.ID)
		}
		if err := s.store(ctx, s.state, s.webhookKey(), &rec); err != nil {
			return nil, err
		}
	}
	s.addSecret(rec.Token)
	s.mu.Lock()
	s.hook = &rec
	s.mu.Unlock()
	return &rec, nil
}

// dropWebhook forgets a webhook Discord no longer knows.
func (s *Sink) dropWebhook(ctx context.Context, h *webhookRec) {
	s.log.Info("discord: channel webhook is gone; making another", "webhook", h.ID)
	s.mu.Lock()
	if s.hook != nil && s.hook.ID == h.ID {
		s.hook = nil
	}
	s.mu.Unlock()
	s.forget(ctx, s.webhookKey())
}

// deliverRecall edits the recalled message to say so.
func (s *Sink) deliverRecall(ctx context.Context, d *events.RecallData) error {
	conv := convOf(d.AccountUID, d.Conversation)
	unlock := s.lockConv(s.threadKey(conv))
	defer unlock()
	var rec postedRec
	found, err := s.load(ctx, s.records, s.msgKey(events.MessageID(d.AccountUID, d.RecalledMsgKey)), &rec)
	if err != nil {
		return err
	}
	if !found || len(rec.MessageIDs) == 0 {
		s.log.Debug("discord: recall of a message never posted here", "msg_key", d.RecalledMsgKey)
		return nil
	}
	note := "🚫 *Recalled by the sender.*"
	if d.BySystem {
		note = "🚫 *Removed by Bilibili.*"
	}
	if strings.HasPrefix(rec.Content, note) {
		return nil // edited before
	}
	content := note
	if rec.Content != "" {
		content = truncate(note+"\n"+rec.Content, maxContent)
	}
	hook, err := s.webhook(ctx)
	if err != nil {
		return err
	}
	uri := discordgo.EndpointWebhookMessage(hook.ID, hook.Token, rec.MessageIDs[0]) + "?thread_id=" + url.QueryEscape(rec.ThreadID)
	body := &discordgo.WebhookEdit{Content: &content, AllowedMentions: noMentions()}
	if _, err := s.dg.RequestWithBucketID("PATCH", uri, body, discordgo.EndpointWebhookToken("", ""), opts(ctx)...); err != nil {
		if status, code := apiStatus(err); status == http.StatusNotFound && (code == codeUnknownChannel || code == codeUnknownMessage || code == codeUnknownWebhook) {
			s.log.Info("discord: recalled message is gone from Discord", "msg_key", d.RecalledMsgKey)
			return nil
		}
		return s.classify("marking a message recalled", err)
	}
	rec.Content = content
	return s.store(ctx, s.records, s.msgKey(events.MessageID(d.AccountUID, d.RecalledMsgKey)), &rec)
}

// parseRef splits an origin ref "<channel>:<message>".
func parseRef(ref string) (channel, message string, ok bool) {
	channel, message, ok = strings.Cut(ref, ":")
	return channel, message, ok && channel != "" && message != ""
}

// deliverResult shows a send result on the Discord message it came from.
func (s *Sink) deliverResult(ctx context.Context, eventID string, ok bool, d *events.SendResultData) error {
	if d.Origin == nil || d.Origin.Platform != Platform {
		return nil
	}
	channel, message, valid := parseRef(d.Origin.Ref)
	if !valid {
		return nil
	}
	if c, err := s.convOfThread(ctx, channel); err != nil {
		return err
	} else if c == nil {
		return nil // another channel's reply
	}
	if ok {
		keys := d.MsgKeys
		if d.MsgKey != 0 {
			keys = append(keys, strconv.FormatUint(d.MsgKey, 10))
		}
		for _, k := range keys {
			if err := s.store(ctx, s.records, echoKey(d.AccountUID, k), struct{}{}); err != nil {
				return err
			}
		}
		return s.inThread(ctx, channel, "marking a reply sent", func() error {
			return s.dg.MessageReactionAdd(channel, message, "✅", opts(ctx)...)
		})
	}
	var rec postedRec
	if found, err := s.load(ctx, s.records, s.msgKey(eventID), &rec); err != nil || found {
		return err // replied before (a redelivery)
	}
	reason := strings.TrimSpace(d.Error)
	if reason == "" {
		reason = "Bilibili did not say why."
	}
	if err := s.reply(ctx, channel, message, "❌ Not sent to Bilibili: "+reason); err != nil {
		return err
	}
	return s.store(ctx, s.records, s.msgKey(eventID), &postedRec{ThreadID: channel, Parts: 1, MessageIDs: []string{"reply"}})
}

// reply answers a Discord message in its channel.
func (s *Sink) reply(ctx context.Context, channel, message, text string) error {
	send := &discordgo.MessageSend{
		Content:         truncate(text, maxContent),
		AllowedMentions: noMentions(),
		Reference:       &discordgo.MessageReference{MessageID: message, ChannelID: channel, FailIfNotExists: new(false)},
	}
	return s.inThread(ctx, channel, "replying in a thread", func() error {
		_, err := s.dg.ChannelMessageSendComplex(channel, send, opts(ctx)...)
		return err
	})
}

// inThread runs fn, unarchiving the thread once when it is archived; a
// thread or message that is gone is no error.
func (s *Sink) inThread(ctx context.Context, thread, op string, fn func() error) error {
	err := fn()
	if status, code := apiStatus(err); status == http.StatusBadRequest && code == codeThreadArchived {
		if err := s.unarchive(ctx, thread); err != nil {
			return err
		}
		err = fn()
	}
	if status, code := apiStatus(err); status == http.StatusNotFound && (code == codeUnknownChannel || code == codeUnknownMessage) {
		s.log.Info("discord: "+op+": the thread or message is gone", "channel", thread)
		return nil
	}
	return s.classify(op, err)
}

// deliverStatus posts an account status in the channel (in a forum, in a
// post of its own).
func (s *Sink) deliverStatus(ctx context.Context, d *events.AccountStatusData) error {
	text := truncate("**Bilibili account:** "+escapeMarkdown(d.Message), maxContent)
	if d.Message == "" {
		text = "**Bilibili account:** " + escapeMarkdown(d.State)
	}
	parent, err := s.parentChannel(ctx)
	if err != nil {
		return err
	}
	send := &discordgo.MessageSend{Content: text, AllowedMentions: noMentions()}
	if parent.Type != discordgo.ChannelTypeGuildForum {
		_, err := s.dg.ChannelMessageSendComplex(s.channel, send, opts(ctx)...)
		return s.classify("posting the account status", err)
	}
	var rec threadRec
	found, err := s.load(ctx, s.state, s.statusKey(), &rec)
	if err != nil {
		return err
	}
	if found && rec.ThreadID != "" {
		err := s.inThread(ctx, rec.ThreadID, "posting the account status", func() error {
			_, err := s.dg.ChannelMessageSendComplex(rec.ThreadID, send, opts(ctx)...)
			if status, code := apiStatus(err); status == http.StatusNotFound && code == codeUnknownChannel {
				found = false
				return nil
			}
			return err
		})
		if err != nil || found {
			return err
		}
	}
	ch, err := s.dg.ForumThreadStartComplex(s.channel, &discordgo.ThreadStart{Name: "bilibridge status", AutoArchiveDuration: archiveMinutes}, send, opts(ctx)...)
	if err != nil {
		return s.classify("creating the status post", err)
	}
	return s.store(ctx, s.state, s.statusKey(), &threadRec{ThreadID: ch.ID})
}

// convOfThread returns the conversation of a thread of this channel, or
// nil.
func (s *Sink) convOfThread(ctx context.Context, thread string) (*conversation, error) {
	s.mu.Lock()
	c, ok := s.convs[thread]
	s.mu.Unlock()
	if ok {
		return c, nil
	}
	var rec conversation
	found, err := s.load(ctx, s.state, s.convKey(thread), &rec)
	if err != nil || !found {
		return nil, err
	}
	s.mu.Lock()
	s.convs[thread] = &rec
	s.mu.Unlock()
	return &rec, nil
}
