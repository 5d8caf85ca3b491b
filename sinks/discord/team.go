package discord

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

// Team is the team inbox, as the sink uses it (*team.Service implements
// it; the bridge wires it in).
type Team interface {
	// Do carries out a member's action on a conversation and returns a
	// brief answer for the thread. It publishes the team event that every
	// surface, this sink included, then shows.
	Do(ctx context.Context, key events.ConversationKey, a team.Action, by events.Actor) (reply string, err error)
	// MemberByDiscord names the member linked to a Discord user, if any.
	MemberByDiscord(ctx context.Context, userID string) (name string, ok bool)
}

// CommandHelp answers with the commands of a conversation thread.
const CommandHelp = "/help"

// Answers to team commands that do not depend on the team's reply.
const (
	answerTeamOff = "ℹ️ The team inbox is off on this bridge."
	answerFailed  = "❌ That did not work; try again in a moment."
)

// helpText is the answer to /help.
func helpText(teamOn bool) string {
	h := "Messages typed in this thread are sent to Bilibili (text and images); start one with // for a remark that stays here.\n" +
		"/status – login state, last good poll, queue depth\n/read – mark this conversation read on Bilibili\n/help – this text\n"
	if !teamOn {
		return h + "The team inbox is off on this bridge."
	}
	return h + "Team: " + team.Commands + ". Notes stay in the team; the thread's name shows who answers and ✅ done (a done thread is archived until the next message)."
}

// linkHelp answers a team command from a user who may reply but is no
// member: how an admin links them.
func linkHelp(userID string) string {
	return "🔗 Your Discord account is not linked to a team member, so team commands do nothing for you yet. " +
		"Ask an admin: bilibridge member add NAME --discord " + userID
}

// member names the team member linked to Discord user id.
func (s *Sink) member(ctx context.Context, id string) (string, bool) {
	if s.cfg.Team == nil {
		return "", false
	}
	name, ok := s.cfg.Team.MemberByDiscord(ctx, id)
	return name, ok && name != ""
}

// teamCommand handles a team command (parsed as a, or perr) typed in
// conv's thread by a user who may act there: member name when linked.
// Failures are answered in the thread, never retried: the team acts once.
func (s *Sink) teamCommand(ctx context.Context, m *discordgo.Message, conv *conversation, a team.Action, perr error, name string, linked bool) {
	switch {
	case s.cfg.Team == nil:
		s.tell(ctx, m, answerTeamOff)
		return
	case !linked:
		s.tell(ctx, m, linkHelp(m.Author.ID))
		return
	case perr != nil:
		var ie *team.InputError
		if errors.As(perr, &ie) {
			s.tell(ctx, m, "⚠️ "+ie.Reason)
			return
		}
		s.log.Warn("discord: a team command could not be read", "message", m.ID, "err", perr)
		s.tell(ctx, m, answerFailed)
		return
	}
	// Held until answered: the team event this causes is delivered after
	// the answer (in this process), not archiving the thread before it.
	unlock := s.lockConv(s.threadKey(*conv))
	defer unlock()
	key := events.ConversationKey{AccountUID: conv.AccountUID, SessionType: conv.SessionType, TalkerID: conv.TalkerID}
	by := events.Actor{Member: name}
	noted := ""
	if a.Kind == team.ActNote {
		// Recorded before the team acts: the note's event may be
		// delivered before Do returns.
		noted = s.echoes.Key(conv.Key(), by, a.Note)
		if err := s.echoes.Mark(ctx, noted); err != nil {
			s.log.Warn("discord: could not record a note typed here; it will be posted once more", "err", err)
			noted = ""
		}
	}
	log := s.log.With("thread", m.ChannelID, "message", m.ID, "user", m.Author.ID, "member", name, "action", a.Kind)
	answer, err := s.cfg.Team.Do(ctx, key, a, by)
	if err != nil {
		if noted != "" {
			if err := s.echoes.Unmark(ctx, noted); err != nil {
				s.log.Warn("discord: could not drop the record of a note that failed", "err", err)
			}
		}
		log.Warn("discord: a team command failed", "err", err)
		s.answerTeam(ctx, m, *conv, false, teamErrorText(err, a, name))
		return
	}
	log.Info("discord: team command done")
	if strings.TrimSpace(answer) == "" {
		answer = "✔️ Done."
	}
	// A command that reopens the conversation leaves its thread open.
	s.answerTeam(ctx, m, *conv, a.Kind == team.ActStatus && a.Status != events.ConversationDone, answer)
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

// answerTeam answers a team command in its thread. Posting in an archived
// thread unarchives it (Discord does, or the sink does on 50083): a done
// conversation's thread is archived again, unless keepOpen (the command
// reopens the conversation).
func (s *Sink) answerTeam(ctx context.Context, m *discordgo.Message, conv conversation, keepOpen bool, text string) {
	s.tell(ctx, m, text)
	if !keepOpen {
		s.keepArchivedIfDone(ctx, conv, m.ChannelID)
	}
}

// keepArchivedIfDone archives thread again when its conversation is done,
// after the sink posted in it. Failures are logged.
func (s *Sink) keepArchivedIfDone(ctx context.Context, conv conversation, thread string) {
	var rec threadRec
	if found, err := s.load(ctx, s.state, s.threadKey(conv), &rec); err != nil || !found || rec.Status != events.ConversationDone {
		return
	}
	yes := true
	_, err := s.dg.ChannelEdit(thread, &discordgo.ChannelEdit{Archived: &yes}, opts(ctx)...)
	if status, code := apiStatus(err); err != nil && !(status == http.StatusBadRequest && code == codeThreadArchived) {
		s.log.Warn("discord: could not archive a done conversation's thread again after posting in it", "thread", thread,
			"err", s.classify("archiving a thread", err))
	}
}

// deliverTeamState shows a team.assigned or team.status event on the
// conversation's thread: apply sets the new state on the thread's record;
// the thread is archived when the status becomes done and unarchived when
// it leaves done, and renamed when its name (see threadName) changes, in
// one request. Nothing is asked of Discord when nothing changes: a
// redelivered event renames nothing (Discord allows about two renames in
// ten minutes; a 429 is the runtime's to wait out).
func (s *Sink) deliverTeamState(ctx context.Context, b events.TeamBase, apply func(*threadRec)) error {
	conv := convOf(b.AccountUID, b.Conversation)
	key := s.threadKey(conv)
	unlock := s.lockConv(key)
	defer unlock()
	var rec threadRec
	if _, err := s.load(ctx, s.state, key, &rec); err != nil {
		return err
	}
	want := rec
	apply(&want)
	if rec.ThreadID == "" {
		// No thread yet: its name, once created, shows the state.
		if want == rec {
			return nil
		}
		return s.store(ctx, s.state, key, &want)
	}
	if conv.Name == "" {
		c, err := s.convOfThread(ctx, rec.ThreadID)
		if err != nil {
			return err
		}
		if c != nil {
			conv.Name = c.Name
		}
	}
	current := rec.Name
	if current == "" {
		current = threadName(conv, s.cfg.MultiAccount, "", "")
	}
	want.Name = threadName(conv, s.cfg.MultiAccount, want.Assignee, want.Status)
	edit := &discordgo.ChannelEdit{}
	if want.Name != current {
		edit.Name = want.Name
	}
	done := want.Status == events.ConversationDone
	if want.Status != rec.Status && (done || rec.Status == events.ConversationDone) {
		edit.Archived = &done
	}
	if edit.Name != "" || edit.Archived != nil {
		err := s.editThread(ctx, rec.ThreadID, edit, done)
		if status, code := apiStatus(err); status == http.StatusNotFound && code == codeUnknownChannel {
			s.log.Info("discord: conversation thread is gone; the next message makes a new one", "thread", rec.ThreadID)
			s.dropThread(ctx, conv, rec.ThreadID)
			return s.store(ctx, s.state, key, &threadRec{Assignee: want.Assignee, Status: want.Status})
		}
		if err != nil {
			return s.classify("showing the team state on the thread", err)
		}
		s.log.Info("discord: thread shows the team state", "thread", rec.ThreadID, "name", want.Name, "status", want.Status)
	}
	return s.store(ctx, s.state, key, &want)
}

// editThread applies edit to thread. Discord refuses any change to an
// archived thread (archived after a week without messages, or done) but
// unarchiving: such a thread is unarchived with the change, and archived
// again when done. Errors are discordgo's.
func (s *Sink) editThread(ctx context.Context, thread string, edit *discordgo.ChannelEdit, done bool) error {
	_, err := s.dg.ChannelEdit(thread, edit, opts(ctx)...)
	if status, code := apiStatus(err); status != http.StatusBadRequest || code != codeThreadArchived {
		return err
	}
	no := false
	again := *edit
	again.Archived = &no
	if _, err := s.dg.ChannelEdit(thread, &again, opts(ctx)...); err != nil || !done {
		return err
	}
	yes := true
	_, err = s.dg.ChannelEdit(thread, &discordgo.ChannelEdit{Archived: &yes}, opts(ctx)...)
	return err
}

// noteAuthor is who wrote a note.
func noteAuthor(d *events.NoteData) events.Actor {
	if d.Note.By != (events.Actor{}) {
		return d.Note.By
	}
	return d.By
}

// deliverNote posts an internal note in the conversation's thread, marked
// as such, so that the team sees notes made in the browser, the API or
// Telegram. A note typed here as /note is already in the thread and is
// not posted again (see sinks.Echoes). No thread yet: the note is not posted
// (it is in the team inbox); the thread is not created for it.
func (s *Sink) deliverNote(ctx context.Context, eventID string, d *events.NoteData) error {
	conv := convOf(d.AccountUID, d.Conversation)
	key := s.threadKey(conv)
	unlock := s.lockConv(key)
	defer unlock()
	by := noteAuthor(d)
	if by.Member != "" {
		echo, countErr, err := s.echoes.Take(ctx, s.echoes.Key(conv.Key(), by, d.Note.Text), func(ctx context.Context) error {
			return s.store(ctx, s.records, s.msgKey(eventID), &postedRec{})
		})
		if countErr != nil {
			s.log.Warn("discord: could not count down the record of a note typed here", "err", countErr)
		}
		if err != nil || echo {
			return err
		}
	}
	var posted postedRec
	if found, err := s.load(ctx, s.records, s.msgKey(eventID), &posted); err != nil || found {
		return err // posted before (a redelivery)
	}
	var rec threadRec
	if _, err := s.load(ctx, s.state, key, &rec); err != nil {
		return err
	}
	if rec.ThreadID == "" {
		s.log.Debug("discord: a note on a conversation without a thread here; not posted", "session_type", conv.SessionType, "talker", conv.TalkerID)
		return nil
	}
	send := &discordgo.MessageSend{
		Content:         truncate("📝 **"+escapeMarkdown(by.String())+"** · *internal note, not sent to Bilibili*\n"+escapeMarkdown(d.Note.Text), maxContent),
		AllowedMentions: noMentions(),
	}
	var id string
	err := s.inThread(ctx, rec.ThreadID, "posting a note", func() error {
		msg, err := s.dg.ChannelMessageSendComplex(rec.ThreadID, send, opts(ctx)...)
		if err == nil {
			id = msg.ID
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := s.store(ctx, s.records, s.msgKey(eventID), &postedRec{ThreadID: rec.ThreadID, Parts: 1, MessageIDs: []string{id}}); err != nil {
		return err
	}
	if rec.Status == events.ConversationDone {
		s.keepArchivedIfDone(ctx, conv, rec.ThreadID)
	}
	return nil
}
