package telegram

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

// Team is the team inbox, as the sink uses it (*team.Service implements
// it; the bridge wires it in).
type Team interface {
	// Do carries out a member's action on a conversation and returns a
	// brief answer for the chat. It publishes the team event that every
	// surface, this sink included, then shows.
	Do(ctx context.Context, key events.ConversationKey, a team.Action, by events.Actor) (reply string, err error)
	// MemberByTelegram names the member linked to a Telegram user, if any.
	MemberByTelegram(ctx context.Context, userID int64) (name string, ok bool)
}

// Answers to team commands that do not depend on the team's reply.
const (
	answerTeamOff = "ℹ️ The team inbox is off on this bridge."
	answerFailed  = "❌ That did not work; try again in a moment."
)

// linkHelp answers a team command from a user who may reply but is no
// member: how an admin links them.
func linkHelp(userID int64) string {
	return fmt.Sprintf("🔗 Your Telegram account is not linked to a team member, so team commands do nothing for you yet. "+
		"Ask an admin: bilibridge member add NAME --telegram %d", userID)
}

// member names the team member linked to Telegram user id.
func (s *Sink) member(ctx context.Context, id int64) (string, bool) {
	if s.cfg.Team == nil {
		return "", false
	}
	name, ok := s.cfg.Team.MemberByTelegram(ctx, id)
	return name, ok && name != ""
}

// mayAct reports whether Telegram user id may reply and use commands: in
// TELEGRAM_ALLOWED_USERS, or linked to a member.
func (s *Sink) mayAct(ctx context.Context, id int64) bool {
	if s.allowed[id] {
		return true
	}
	_, linked := s.member(ctx, id)
	return linked
}

// lockConv serialises, within the process, a team command (the team's
// action and the bot's answer) with the delivery of team events of the
// same conversation: the answer to /done is posted before the topic is
// closed, not refused in a topic closed meanwhile.
func (s *Sink) lockConv(c *conversation) func() {
	s.convMu.Lock()
	m, ok := s.convLocks[c.String()]
	if !ok {
		m = &sync.Mutex{}
		s.convLocks[c.String()] = m
	}
	s.convMu.Unlock()
	m.Lock()
	return m.Unlock
}

// teamCommand handles a team command (parsed as a, or perr) typed by the
// sender of m, about conv (nil: typed outside a conversation). It never
// returns an error once the team has acted: the update must not be
// handled, and the action taken, twice.
func (s *Sink) teamCommand(ctx context.Context, m *models.Message, conv *conversation, a team.Action, perr error) error {
	from := m.From.ID
	name, linked := s.member(ctx, from)
	if !linked && !s.allowed[from] {
		s.log.Debug("ignoring a team command from a user who is not allowed", "user", from, "message", m.ID)
		return nil
	}
	switch {
	case s.cfg.Team == nil:
		return s.reply(ctx, m, answerTeamOff)
	case !linked:
		return s.reply(ctx, m, linkHelp(from))
	case perr != nil:
		var ie *team.InputError
		if errors.As(perr, &ie) {
			return s.reply(ctx, m, "⚠️ "+ie.Reason)
		}
		s.log.Warn("a team command could not be read", "message", m.ID, "err", perr)
		return s.reply(ctx, m, answerFailed)
	case conv == nil:
		return s.reply(ctx, m, "Use team commands inside a conversation's topic (or, in a plain chat, as a reply to one of its messages).")
	}
	unlock := s.lockConv(conv)
	defer unlock()
	key := events.ConversationKey{AccountUID: conv.UID, SessionType: conv.SessionType, TalkerID: conv.TalkerID}
	by := events.Actor{Member: name}
	noted := ""
	if a.Kind == team.ActNote {
		// Recorded before the team acts: the note's event may be
		// delivered before Do returns.
		noted = s.echoes.Key(key, by, a.Note)
		if err := s.echoes.Mark(ctx, noted); err != nil {
			s.log.Warn("could not record a note typed here; it will be posted once more", "conversation", conv.String(), "err", err)
			noted = ""
		}
	}
	log := s.log.With("conversation", conv.String(), "user", from, "member", name, "action", a.Kind)
	answer, err := s.cfg.Team.Do(ctx, key, a, by)
	if err != nil {
		if noted != "" {
			if err := s.echoes.Unmark(ctx, noted); err != nil {
				s.log.Warn("could not drop the record of a note that failed", "err", err)
			}
		}
		log.Warn("a team command failed", "err", err)
		s.answerTeam(ctx, m, false, teamErrorText(err, a, name))
		return nil
	}
	log.Info("team command done")
	if strings.TrimSpace(answer) == "" {
		answer = "✔️ Done."
	}
	// A command that reopens the conversation leaves its topic open.
	s.answerTeam(ctx, m, a.Kind == team.ActStatus && a.Status != events.ConversationDone, answer)
	return nil
}

// teamErrorText says in plain words why a team action failed, without
// internals.
func teamErrorText(err error, a team.Action, self string) string {
	var ie *team.InputError
	switch {
	case errors.As(err, &ie):
		return "⚠️ " + ie.Reason
	case errors.Is(err, team.ErrNoMember):
		who := a.Assignee
		if who == "" {
			who = self
		}
		return "⚠️ There is no member called " + who + "."
	case errors.Is(err, team.ErrNoConversation):
		return "⚠️ The team inbox does not know this conversation yet."
	}
	return answerFailed
}

// answerTeam answers a team command in its topic (or chat). The bot
// cannot post in a closed topic (a done conversation): the topic is
// reopened for the answer and closed again, unless keepOpen (the command
// reopens the conversation). Failures are only logged.
func (s *Sink) answerTeam(ctx context.Context, m *models.Message, keepOpen bool, text string) {
	thread := 0
	if m.IsTopicMessage {
		thread = m.MessageThreadID
	}
	send := func() error {
		if err := s.wait(ctx); err != nil {
			return err
		}
		_, err := s.bot.SendMessage(ctx, &bot.SendMessageParams{ChatID: s.cfg.ChatID, MessageThreadID: thread, Text: esc(text),
			ParseMode: models.ParseModeHTML, ReplyParameters: &models.ReplyParameters{MessageID: m.ID, AllowSendingWithoutReply: true}})
		return err
	}
	err := send()
	if err != nil && thread != 0 && topicClosed(err) {
		if err = s.setTopicClosed(ctx, thread, false); err == nil {
			err = send()
			if !keepOpen {
				if cerr := s.setTopicClosed(ctx, thread, true); cerr != nil {
					s.log.Warn("could not close a done conversation's topic again after answering in it", "thread", thread, "err", s.scrub(cerr))
				}
			}
		}
	}
	if err != nil {
		s.log.Warn("could not answer a team command in the chat", "message", m.ID, "err", s.scrub(err))
	}
}

// setTopicClosed closes or reopens a topic; one that is so already is
// fine. Errors are the library's, unscrubbed.
func (s *Sink) setTopicClosed(ctx context.Context, thread int, closed bool) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	var err error
	if closed {
		_, err = s.bot.CloseForumTopic(ctx, &bot.CloseForumTopicParams{ChatID: s.cfg.ChatID, MessageThreadID: thread})
	} else {
		_, err = s.bot.ReopenForumTopic(ctx, &bot.ReopenForumTopicParams{ChatID: s.cfg.ChatID, MessageThreadID: thread})
	}
	if err != nil && notModified(err) {
		return nil
	}
	return err
}

// deliverTeamState shows a team.assigned or team.status event on the
// conversation's topic: apply sets the new state on the topic's record;
// the topic is closed when the status becomes done and reopened when it
// leaves done, and renamed when its name (see topicName) changes. What
// was done is recorded as it is done, so a redelivered event changes
// nothing. A flat chat has no topic to show the state on.
func (s *Sink) deliverTeamState(ctx context.Context, b events.TeamBase, apply func(*topicRecord)) error {
	forum, err := s.isForum(ctx)
	if err != nil || !forum {
		return err
	}
	c := &conversation{UID: b.AccountUID, Conversation: b.Conversation}
	unlock := s.lockConv(c)
	defer unlock()
	rec, err := s.loadTopic(ctx, c)
	if err != nil {
		return err
	}
	want := rec
	apply(&want)
	if rec.Thread == 0 {
		// No topic yet: its name, once created, shows the state.
		if want == rec {
			return nil
		}
		return s.saveTopic(ctx, c, want)
	}
	log := s.log.With("conversation", c.String(), "thread", rec.Thread)
	if want.Status != rec.Status && (want.Status == events.ConversationDone || rec.Status == events.ConversationDone) {
		done := want.Status == events.ConversationDone
		if err := s.setTopicClosed(ctx, rec.Thread, done); err != nil {
			return s.topicChangeFailed(ctx, c, rec, err)
		}
		log.Info("topic closed or reopened for the team status", "status", want.Status)
	}
	rec.Status = want.Status
	rec.Assignee = want.Assignee
	if name := s.topicName(c, rec); name != rec.Name {
		if err := s.wait(ctx); err != nil {
			return err
		}
		_, err := s.bot.EditForumTopic(ctx, &bot.EditForumTopicParams{ChatID: s.cfg.ChatID, MessageThreadID: rec.Thread, Name: name})
		if err != nil && !notModified(err) {
			// The status step is done: record it, so that the retry
			// only renames.
			_ = s.saveTopic(ctx, c, rec)
			return s.topicChangeFailed(ctx, c, rec, err)
		}
		log.Info("topic renamed for the team state", "name", name)
		rec.Name = name
	}
	if c.Name != "" {
		rec.Talker = c.Name
	}
	return s.saveTopic(ctx, c, rec)
}

// topicChangeFailed reads the failure of a change to the conversation's
// topic: a topic deleted meanwhile is forgotten (the next message makes
// one, named for the state recorded), anything else is the Bot API's
// verdict.
func (s *Sink) topicChangeFailed(ctx context.Context, c *conversation, rec topicRecord, err error) error {
	if !topicGone(err) {
		return s.verdict(err)
	}
	s.log.Info("the conversation's topic is gone; the next message makes a new one", "conversation", c.String(), "thread", rec.Thread)
	rec.Thread, rec.Name = 0, ""
	return s.saveTopic(ctx, c, rec)
}

func (s *Sink) saveTopic(ctx context.Context, c *conversation, rec topicRecord) error {
	if err := s.saveJSON(ctx, s.cfg.State, s.topicKey(c), rec); err != nil {
		return fmt.Errorf("telegram: recording the topic: %w", err)
	}
	return nil
}

// noteAuthor is who wrote a note.
func noteAuthor(d events.NoteData) events.Actor {
	if d.Note.By != (events.Actor{}) {
		return d.Note.By
	}
	return d.By
}

// deliverNote posts an internal note in the conversation's topic (in a
// flat chat, under a header naming the talker), marked as such, so that
// the team sees notes made in the browser, the API or Discord. A note
// typed here as /note is already in the chat and is not posted again
// (see sinks.Echoes). No topic yet: the note is not posted (it is in the
// team inbox); the topic is not created for it.
func (s *Sink) deliverNote(ctx context.Context, eventID string, d events.NoteData) error {
	c := &conversation{UID: d.AccountUID, Conversation: d.Conversation}
	by := noteAuthor(d)
	if by.Member != "" {
		key := events.ConversationKey{AccountUID: c.UID, SessionType: c.SessionType, TalkerID: c.TalkerID}
		echo, countErr, err := s.echoes.Take(ctx, s.echoes.Key(key, by, d.Note.Text), func(ctx context.Context) error {
			return s.saveJSON(ctx, s.cfg.Records, s.msgKey(eventID), postedRecord{Done: true})
		})
		if countErr != nil {
			s.log.Warn("could not count down the record of a note typed here", "err", countErr)
		}
		if err != nil || echo {
			return err
		}
	}
	forum, err := s.isForum(ctx)
	if err != nil {
		return err
	}
	var rec topicRecord
	if forum {
		if rec, err = s.loadTopic(ctx, c); err != nil {
			return err
		}
		if rec.Thread == 0 {
			s.log.Debug("a note on a conversation without a topic here; not posted", "conversation", c.String())
			return nil
		}
	}
	head := "📝 <b>" + esc(by.String()) + "</b> · <i>internal note, not sent to Bilibili</i>"
	reopened, err := s.postReport(ctx, eventID, c, 0, func(flat bool) []part {
		h := head
		if flat {
			h = "💬 " + talkerTitle(c.Conversation) + "\n" + head
		}
		return textPartsPlain(h, d.Note.Text, "")
	})
	if err != nil {
		return err
	}
	if reopened && rec.Status == events.ConversationDone {
		// Posting reopened the done conversation's topic: close it again.
		if err := s.setTopicClosed(ctx, rec.Thread, true); err != nil {
			s.log.Warn("could not close a done conversation's topic again after a note", "thread", rec.Thread, "err", s.scrub(err))
		}
	}
	return nil
}
