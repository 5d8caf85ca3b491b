package team

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// MemberDirectory is what the service needs to know of the team.
// *Members implements it.
type MemberDirectory interface {
	Get(ctx context.Context, name string) (*Member, error)
	ByTelegram(ctx context.Context, id int64) (*Member, bool)
	ByDiscord(ctx context.Context, id string) (*Member, bool)
}

// Backfill fetches a conversation's messages older than the Bilibili
// seqno before (0: the newest), oldest first, from Bilibili itself: the
// history of a conversation from before the bridge ran.
type Backfill func(ctx context.Context, key events.ConversationKey, before uint64, n int) ([]events.MessageData, error)

// Acker marks a conversation read on Bilibili up to seqno (update_ack),
// for MARK_READ: the creator's phone then stops showing it unread.
type Acker func(ctx context.Context, key events.ConversationKey, seqno uint64) error

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Projection *Projection
	Members    MemberDirectory
	Publisher  Publisher
	Subjects   events.Subjects
	Backfill   Backfill // nil: no history older than the stream
	// Marks keeps where each page of Bilibili's history ended (bucket
	// bili_records), so that a cursor one process gave pages on in any
	// other, and after a restart; nil: this process's memory only.
	Marks jetstream.KeyValue
	Acker Acker // nil: reading does not touch Bilibili
	// Location dates "tomorrow" in a snooze; default time.Local.
	Location *time.Location
	Now      func() time.Time
}

// Service carries out what the team does to conversations, from any
// surface: each action is a team event on stream BILI, and the service
// answers once its own projection has applied it, so the caller reads
// what it wrote.
type Service struct {
	cfg ServiceConfig

	mu      sync.Mutex
	seqnoOf map[uint64]uint64 // msg_key → seqno of backfilled messages, for paging on
}

// NewService returns a service of cfg.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, seqnoOf: map[uint64]uint64{}}
}

// Get returns the conversation with key, or ErrNoConversation.
func (s *Service) Get(key events.ConversationKey) (*Conversation, error) {
	c, ok := s.cfg.Projection.Get(key)
	if !ok {
		return nil, ErrNoConversation
	}
	c.Status = c.EffectiveStatus(s.cfg.Now())
	if c.Status != events.ConversationSnoozed {
		c.SnoozedUntil = nil
	}
	return c, nil
}

// Assign gives the conversation to the member called assignee ("" for
// nobody).
func (s *Service) Assign(ctx context.Context, key events.ConversationKey, assignee string, by events.Actor) (*Conversation, error) {
	var who *string
	if assignee != "" {
		m, err := s.cfg.Members.Get(ctx, assignee)
		if err != nil {
			return nil, err
		}
		who = &m.Name
	}
	return s.act(ctx, key, by, events.TypeTeamAssigned, func(b events.TeamBase) any {
		return events.AssignedData{TeamBase: b, Assignee: who}
	})
}

// SetStatus opens, snoozes (until, in the future) or closes the
// conversation.
func (s *Service) SetStatus(ctx context.Context, key events.ConversationKey, status string, until time.Time, by events.Actor) (*Conversation, error) {
	var snooze *time.Time
	switch status {
	case events.ConversationOpen, events.ConversationDone:
	case events.ConversationSnoozed:
		if !until.After(s.cfg.Now()) {
			return nil, inputErrorf("snoozed_until must be in the future")
		}
		u := until.UTC()
		snooze = &u
	default:
		return nil, inputErrorf("status must be open, snoozed or done, not %q", status)
	}
	return s.act(ctx, key, by, events.TypeTeamStatus, func(b events.TeamBase) any {
		return events.StatusData{TeamBase: b, Status: status, SnoozedUntil: snooze}
	})
}

// maxNote bounds a note's length, in characters.
const maxNote = 4000

// AddNote adds an internal note: for the team only, never sent.
func (s *Service) AddNote(ctx context.Context, key events.ConversationKey, text string, by events.Actor) (*Conversation, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return nil, inputErrorf("a note needs a text")
	case len([]rune(text)) > maxNote:
		return nil, inputErrorf("a note is at most %d characters", maxNote)
	}
	note := events.Note{ID: uuid.NewString(), Text: text, Time: s.cfg.Now().UTC(), By: by}
	return s.act(ctx, key, by, events.TypeTeamNote, func(b events.TeamBase) any {
		return events.NoteData{TeamBase: b, Note: note}
	})
}

// MarkRead marks the conversation read up to its newest message and, with
// an Acker, on Bilibili too.
func (s *Service) MarkRead(ctx context.Context, key events.ConversationKey, by events.Actor) (*Conversation, error) {
	c, err := s.Get(key)
	if err != nil {
		return nil, err
	}
	upTo, seqno := c.LastIncoming, c.LastIncomingSeqno
	out, err := s.act(ctx, key, by, events.TypeTeamRead, func(b events.TeamBase) any {
		return events.ReadData{TeamBase: b, ReadUpTo: upTo}
	})
	if err == nil && s.cfg.Acker != nil && seqno != 0 {
		// On record in the team already: a Bilibili failure is not the
		// caller's failure, it only leaves the phone showing unread.
		_ = s.cfg.Acker(ctx, key, seqno)
	}
	return out, err
}

// act publishes a team event about key, built by data, and waits until
// the projection applied it.
func (s *Service) act(ctx context.Context, key events.ConversationKey, by events.Actor, typ string, data func(events.TeamBase) any) (*Conversation, error) {
	c, err := s.Get(key)
	if err != nil {
		return nil, err
	}
	base := events.TeamBase{AccountUID: key.AccountUID, Conversation: conversationOf(c), By: by}
	ev, err := events.New(key.AccountUID, typ, fmt.Sprintf("%d-team-%s", key.AccountUID, uuid.NewString()), key.Subject(), s.cfg.Now(), data(base))
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq, err := s.cfg.Publisher.PublishSeq(pctx, s.cfg.Subjects.Team(key.AccountUID, key.SessionType, key.TalkerID), ev)
	if err != nil {
		return nil, fmt.Errorf("recording the team action: %w", err)
	}
	if err := s.cfg.Projection.WaitApplied(pctx, seq); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotVisibleYet, err)
	}
	return s.Get(key)
}

// Do carries out an action typed in a chat and returns the brief answer
// the bot gives.
func (s *Service) Do(ctx context.Context, key events.ConversationKey, a Action, by events.Actor) (string, error) {
	answer, err := s.do(ctx, key, a, by)
	if errors.Is(err, ErrNotVisibleYet) {
		// Done, only not shown here yet: said as done, so that nobody
		// repeats it (and a chat goes on skipping its own note's echo).
		return answer + " It shows everywhere in a moment.", nil
	}
	return answer, err
}

func (s *Service) do(ctx context.Context, key events.ConversationKey, a Action, by events.Actor) (string, error) {
	switch a.Kind {
	case ActClaim:
		if by.Member == "" {
			return "", inputErrorf("only a team member can claim a conversation")
		}
		_, err := s.Assign(ctx, key, by.Member, by)
		return "Claimed by " + by.Member + ".", err
	case ActAssign:
		_, err := s.Assign(ctx, key, a.Assignee, by)
		if a.Assignee == "" {
			return "Unassigned.", err
		}
		return "Assigned to " + strings.ToLower(a.Assignee) + ".", err
	case ActStatus:
		_, err := s.SetStatus(ctx, key, a.Status, a.Until, by)
		switch a.Status {
		case events.ConversationDone:
			return "Done.", err
		case events.ConversationSnoozed:
			return "Snoozed until " + a.Until.In(s.cfg.Location).Format("Mon 15:04") + ".", err
		}
		return "Reopened.", err
	case ActNote:
		_, err := s.AddNote(ctx, key, a.Note, by)
		return "Note saved (not sent to Bilibili).", err
	case ActRead:
		_, err := s.MarkRead(ctx, key, by)
		return "Marked read.", err
	}
	return "", inputErrorf("unknown action %q", a.Kind)
}

// MemberByTelegram names the member linked to a Telegram user.
func (s *Service) MemberByTelegram(ctx context.Context, id int64) (string, bool) {
	m, ok := s.cfg.Members.ByTelegram(ctx, id)
	if !ok {
		return "", false
	}
	return m.Name, true
}

// MemberByDiscord names the member linked to a Discord user.
func (s *Service) MemberByDiscord(ctx context.Context, id string) (string, bool) {
	m, ok := s.cfg.Members.ByDiscord(ctx, id)
	if !ok {
		return "", false
	}
	return m.Name, true
}

// Filter selects conversations for List.
type Filter struct {
	Status   string // open, snoozed, done; "" or "all": any
	Assignee string // a member, "none" for nobody, "" for anyone
	Account  int64  // 0: every account
	Query    string // in the name, the last message or a note
}

// List returns the conversations that pass f, the most recently active
// first, limit at most after the opaque cursor, and the cursor of the
// next page ("" at the end).
func (s *Service) List(f Filter, cursor string, limit int) ([]*Conversation, string, error) {
	switch f.Status {
	case "", "all", events.ConversationOpen, events.ConversationSnoozed, events.ConversationDone:
	default:
		return nil, "", inputErrorf("status must be open, snoozed, done or all, not %q", f.Status)
	}
	var after *pageMark
	if cursor != "" {
		m, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		after = &m
	}
	now := s.cfg.Now()
	q := strings.ToLower(strings.TrimSpace(f.Query))
	p := s.cfg.Projection
	p.mu.RLock()
	matching := p.sortedLocked(func(c *Conversation) bool {
		if f.Account != 0 && c.AccountUID != f.Account {
			return false
		}
		if f.Status != "" && f.Status != "all" && c.EffectiveStatus(now) != f.Status {
			return false
		}
		switch f.Assignee {
		case "":
		case "none":
			if c.Assignee != nil {
				return false
			}
		default:
			if c.Assignee == nil || *c.Assignee != f.Assignee {
				return false
			}
		}
		return q == "" || c.matches(q)
	})
	start := 0
	if after != nil {
		for start < len(matching) && !after.before(matching[start]) {
			start++
		}
	}
	end := min(start+limit, len(matching))
	page := make([]*Conversation, 0, end-start)
	for _, c := range matching[start:end] {
		cc := c.clone()
		cc.Status = cc.EffectiveStatus(now)
		page = append(page, cc)
	}
	p.mu.RUnlock()
	next := ""
	if end < len(matching) {
		next = encodeCursor(page[len(page)-1])
	}
	return page, next, nil
}

// matches reports whether q (lower case) is in the conversation's name,
// key, last message or a note.
func (c *Conversation) matches(q string) bool {
	return strings.Contains(c.search, q)
}

// index keeps what a search looks in, lower-cased, so that a search does
// not lower-case ten thousand conversations on every request. Called
// whenever the conversation changes (under the projection's write lock).
func (c *Conversation) index() {
	var b strings.Builder
	b.WriteString(strings.ToLower(c.Name))
	b.WriteByte(0)
	b.WriteString(c.Key.String())
	if c.LastMessage != nil {
		b.WriteByte(0)
		b.WriteString(strings.ToLower(c.LastMessage.Text))
	}
	for _, n := range c.Notes {
		b.WriteByte(0)
		b.WriteString(strings.ToLower(n.Text))
	}
	c.search = b.String()
}

// pageMark is where a page ended, in the list's order.
type pageMark struct {
	Activity time.Time `json:"t"`
	Key      string    `json:"k"`
}

// before reports whether c comes after the mark in the list's order.
func (m pageMark) before(c *Conversation) bool {
	if !c.LastActivity.Equal(m.Activity) {
		return c.LastActivity.Before(m.Activity)
	}
	return c.Key.String() > m.Key
}

func encodeCursor(c *Conversation) string {
	b, _ := json.Marshal(pageMark{Activity: c.LastActivity, Key: c.Key.String()})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (pageMark, error) {
	var m pageMark
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return pageMark{}, inputErrorf("cursor is not one this API gave out")
	}
	return m, nil
}

// Messages returns up to limit messages of the conversation before the
// message before (0: the newest), oldest first: from the stream, and from
// Bilibili itself where the stream has nothing older (the conversation's
// past from before the bridge ran).
func (s *Service) Messages(ctx context.Context, key events.ConversationKey, before uint64, limit int) ([]events.MessageData, error) {
	if _, err := s.Get(key); err != nil {
		return nil, err
	}
	p := s.cfg.Projection
	msgs, found, more, err := p.page(ctx, key, before, limit)
	if err != nil {
		return nil, err
	}
	if found && (more || len(msgs) == limit || s.cfg.Backfill == nil) {
		return msgs, nil
	}
	// Older than the stream: from Bilibili, before the oldest known.
	var from uint64
	switch {
	case len(msgs) > 0:
		from = msgs[0].Message.Seqno
	case found:
		from = p.oldestSeqno(ctx, key)
	default:
		seqno, ok := s.seqnoBefore(ctx, key, before)
		if !ok {
			return nil, inputErrorf("before is not a message of this conversation")
		}
		from = seqno
	}
	if s.cfg.Backfill == nil {
		return msgs, nil
	}
	older, err := s.cfg.Backfill(ctx, key, from, limit-len(msgs))
	if err != nil {
		if len(msgs) > 0 {
			return msgs, nil // the part the bridge has; Bilibili may answer later
		}
		return nil, fmt.Errorf("reading older messages from Bilibili: %w", err)
	}
	s.mu.Lock()
	for _, m := range older {
		if len(s.seqnoOf) > 100_000 {
			s.seqnoOf = map[uint64]uint64{}
		}
		s.seqnoOf[m.Message.MsgKey] = m.Message.Seqno
	}
	s.mu.Unlock()
	if len(older) > 0 && s.cfg.Marks != nil {
		// The page's oldest message is the next cursor: where any process
		// must go on from. Best effort: a failed write costs only that
		// another process cannot page on from this page (this one can).
		m := older[0].Message
		_, _ = s.cfg.Marks.Put(ctx, markKey(key, m.MsgKey), []byte(strconv.FormatUint(m.Seqno, 10)))
	}
	return append(older, msgs...), nil
}

// seqnoBefore is the Bilibili seqno of before, a message of key's
// history from before the bridge (not in the stream).
func (s *Service) seqnoBefore(ctx context.Context, key events.ConversationKey, before uint64) (uint64, bool) {
	s.mu.Lock()
	seqno, ok := s.seqnoOf[before]
	s.mu.Unlock()
	if ok || s.cfg.Marks == nil {
		return seqno, ok
	}
	e, err := s.cfg.Marks.Get(ctx, markKey(key, before))
	if err != nil {
		return 0, false
	}
	seqno, err = strconv.ParseUint(string(e.Value()), 10, 64)
	return seqno, err == nil
}

// markKey is the key under which Marks keeps the seqno of msgKey.
func markKey(key events.ConversationKey, msgKey uint64) string {
	return fmt.Sprintf("history.%d.%d.%d.%d", key.AccountUID, key.SessionType, key.TalkerID, msgKey)
}

// ErrNotVisibleYet is a team action that was recorded (it is on the
// stream and takes effect everywhere) but that this process has not
// applied in time to answer with it: doing it again would do it twice.
var ErrNotVisibleYet = errors.New("the team action was recorded but is not visible here yet")

// IsInput reports whether err is the caller's mistake (a 4xx).
func IsInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie) || errors.Is(err, ErrNoMember) || errors.Is(err, ErrNoConversation)
}
