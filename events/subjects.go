package events

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// DefaultPrefix is the first token of every subject.
const DefaultPrefix = "bili"

// Subjects builds the NATS subjects of the public contract:
//
//	<prefix>.<uid>.msg.<session_type>.<talker_id>
//	<prefix>.<uid>.recall.<session_type>.<talker_id>
//	<prefix>.<uid>.sent.<session_type>.<talker_id>
//	<prefix>.<uid>.account
//	<prefix>.<uid>.dead.<sink>
//	<prefix>.<uid>.team.<session_type>.<talker_id>
//	<prefix>.<uid>.replay.<sink>                      (a dead letter sent to its sink again)
//	<prefix>.<uid>.send.<session_type>.<talker_id>   (stream BILI_OUTBOX)
type Subjects struct {
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

func (s Subjects) conv(uid int64, kind string, sessionType int, talker uint64) string {
	return fmt.Sprintf("%s.%d.%s.%d.%d", s.prefix(), uid, kind, sessionType, talker)
}

// Message is the subject of a message seen in a conversation.
func (s Subjects) Message(uid int64, sessionType int, talker uint64) string {
	return s.conv(uid, "msg", sessionType, talker)
}

// Recall is the subject of a recall in a conversation.
func (s Subjects) Recall(uid int64, sessionType int, talker uint64) string {
	return s.conv(uid, "recall", sessionType, talker)
}

// Sent is the subject of a send command's result.
func (s Subjects) Sent(uid int64, sessionType int, talker uint64) string {
	return s.conv(uid, "sent", sessionType, talker)
}

// Team is the subject of a team action on a conversation.
func (s Subjects) Team(uid int64, sessionType int, talker uint64) string {
	return s.conv(uid, "team", sessionType, talker)
}

// Send is the subject of a send command on the outbox stream.
func (s Subjects) Send(uid int64, sessionType int, talker uint64) string {
	return s.conv(uid, "send", sessionType, talker)
}

// Sends is the filter of every send command of account uid.
func (s Subjects) Sends(uid int64) string {
	return fmt.Sprintf("%s.%d.send.>", s.prefix(), uid)
}

// Account is the subject of an account's status events.
func (s Subjects) Account(uid int64) string {
	return fmt.Sprintf("%s.%d.account", s.prefix(), uid)
}

// Dead is the subject of events a sink gave up on.
func (s Subjects) Dead(uid int64, sink string) string {
	return fmt.Sprintf("%s.%d.dead.%s", s.prefix(), uid, Token(sink))
}

// DeadFilter is the filter of the dead letters of account uid (0: any)
// and sink ("": any).
func (s Subjects) DeadFilter(uid int64, sink string) string {
	a, k := "*", "*"
	if uid != 0 {
		a = strconv.FormatInt(uid, 10)
	}
	if sink != "" {
		k = Token(sink)
	}
	return fmt.Sprintf("%s.%s.dead.%s", s.prefix(), a, k)
}

// Replay is the subject on which a dead letter's event is handed to its
// sink again (POST /api/v1/dead-letters/{id}/replay): only that sink's
// consumer takes it, so the other sinks do not see the event twice.
func (s Subjects) Replay(uid int64, sink string) string {
	return fmt.Sprintf("%s.%d.replay.%s", s.prefix(), uid, Token(sink))
}

// Replays is the filter of the replays meant for sink, of every account.
func (s Subjects) Replays(sink string) string {
	return fmt.Sprintf("%s.*.replay.%s", s.prefix(), Token(sink))
}

// Stream is one filter of everything on BILI. Reading BILI is much
// faster with it, and the kinds sorted out in code, than with several
// filters: nats-server compares each filter with every subject of a
// block (measured: 62 s for 200,000 events with Inbox's five filters,
// 1.3 s with this one; docs/benchmarks.md).
func (s Subjects) Stream() string { return s.prefix() + ".>" }

// InInbox reports whether subject is one of Inbox's filters'.
func (s Subjects) InInbox(subject string) bool {
	r, err := s.ParseSubject(subject)
	if err != nil {
		return false
	}
	switch r.Kind {
	case "msg", "recall", "sent", "account", "team":
		return true
	}
	return false
}

// Inbox is the filter of what the team sees happen: messages, recalls,
// send results, account status and team actions (the team state's input
// and GET /api/v1/events).
func (s Subjects) Inbox() []string {
	p := s.prefix()
	return []string{p + ".*.msg.>", p + ".*.recall.>", p + ".*.sent.>", p + ".*.account", p + ".*.team.>"}
}

// Presence is the core NATS subject (stored by no stream) on which
// bridge processes tell each other who has a conversation open in the
// browser inbox, and who is typing there.
func (s Subjects) Presence() string { return s.prefix() + ".presence" }

// All matches every subject of the contract, the outbox's too: what
// `bilibridge tail` shows. It is no stream's subject list (BILI and
// BILI_OUTBOX must not overlap).
func (s Subjects) All() string { return s.prefix() + ".*.>" }

// Outbox is the subject filter of stream BILI_OUTBOX.
func (s Subjects) Outbox() string { return s.prefix() + ".*.send.>" }

// Events is the subject filter of every event on BILI except the outbox:
// messages, recalls, send results, account status, dead letters, team
// actions and replays.
func (s Subjects) Events() []string {
	p := s.prefix()
	return []string{p + ".*.msg.>", p + ".*.recall.>", p + ".*.sent.>", p + ".*.account", p + ".*.dead.>", p + ".*.team.>", p + ".*.replay.*"}
}

// Deliverable is the subject filter of the events sinks receive by
// default: everything on BILI but dead letters.
func (s Subjects) Deliverable() []string {
	p := s.prefix()
	return []string{p + ".*.msg.>", p + ".*.recall.>", p + ".*.sent.>", p + ".*.account"}
}

// ForType is the filter of the subjects that carry events of type typ
// (several types share one: send results, team actions), or "" for a
// type this package does not know.
func (s Subjects) ForType(typ string) string {
	p := s.prefix()
	switch typ {
	case TypeMessage:
		return p + ".*.msg.>"
	case TypeRecall:
		return p + ".*.recall.>"
	case TypeSendSucceeded, TypeSendFailed:
		return p + ".*.sent.>"
	case TypeAccountStatus:
		return p + ".*.account"
	case TypeDeadLetter:
		return p + ".*.dead.>"
	case TypeTeamAssigned, TypeTeamStatus, TypeTeamNote, TypeTeamRead:
		return p + ".*.team.>"
	}
	return ""
}

// Route is what a subject names.
type Route struct {
	UID         int64
	Kind        string // msg, recall, sent, send, account, dead, team, replay
	SessionType int
	TalkerID    uint64
}

// ParseSubject splits a subject of the contract. Conversation subjects
// fill SessionType and TalkerID; account and dead subjects do not.
func (s Subjects) ParseSubject(subject string) (Route, error) {
	tok := strings.Split(subject, ".")
	if len(tok) < 3 || tok[0] != s.prefix() {
		return Route{}, fmt.Errorf("events: subject %q is not under %q", subject, s.prefix())
	}
	if tok[1] == "" || tok[1][0] < '0' || tok[1][0] > '9' {
		return Route{}, fmt.Errorf("events: subject %q: bad uid", subject)
	}
	uid, err := strconv.ParseInt(tok[1], 10, 64)
	if err != nil {
		return Route{}, fmt.Errorf("events: subject %q: bad uid", subject)
	}
	c := Route{UID: uid, Kind: tok[2]}
	switch c.Kind {
	case "msg", "recall", "sent", "send", "team":
		if len(tok) != 5 {
			return Route{}, fmt.Errorf("events: subject %q: want 5 tokens", subject)
		}
		st, err := strconv.Atoi(tok[3])
		if err != nil {
			return Route{}, fmt.Errorf("events: subject %q: bad session type", subject)
		}
		talker, err := strconv.ParseUint(tok[4], 10, 64)
		if err != nil {
			return Route{}, fmt.Errorf("events: subject %q: bad talker id", subject)
		}
		c.SessionType, c.TalkerID = st, talker
	case "account":
		if len(tok) != 3 {
			return Route{}, fmt.Errorf("events: subject %q: want 3 tokens", subject)
		}
	case "dead", "replay":
		if len(tok) != 4 {
			return Route{}, fmt.Errorf("events: subject %q: want a sink name", subject)
		}
	default:
		return Route{}, fmt.Errorf("events: subject %q: unknown kind %q", subject, c.Kind)
	}
	return c, nil
}

// Token makes s safe as one subject token: NATS forbids '.', '*', '>' and
// whitespace inside a token.
func Token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, s)
}
