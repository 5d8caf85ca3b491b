package events

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line renders an event as one readable line, for `bilibridge tail` and
// logs: time, type, conversation, and what happened.
func Line(e Event) string {
	t := e.Time.Local().Format("15:04:05")
	switch e.Type {
	case TypeMessage:
		var d MessageData
		if e.DecodeData(&d) != nil {
			break
		}
		who := oneLine(d.Message.SenderName, 64)
		if who == "" {
			who = fmt.Sprint(d.Message.SenderUID)
		}
		arrow := "←"
		if d.Message.Direction == DirectionOut {
			arrow = "→"
		}
		return fmt.Sprintf("%s %s %s %s: %s", t, arrow, convLabel(d.Conversation), who, oneLine(d.Message.Text, 200))
	case TypeRecall:
		var d RecallData
		if e.DecodeData(&d) != nil {
			break
		}
		return fmt.Sprintf("%s ⟲ %s recalled message %d", t, convLabel(d.Conversation), d.RecalledMsgKey)
	case TypeSendSucceeded, TypeSendFailed:
		var d SendResultData
		if e.DecodeData(&d) != nil {
			break
		}
		if e.Type == TypeSendFailed {
			return fmt.Sprintf("%s ✗ %s send %s failed: %s", t, convLabel(d.Conversation), d.CommandID, d.Error)
		}
		return fmt.Sprintf("%s ✓ %s send %s delivered (msg_key %d)", t, convLabel(d.Conversation), d.CommandID, d.MsgKey)
	case TypeAccountStatus:
		var d AccountStatusData
		if e.DecodeData(&d) != nil {
			break
		}
		return fmt.Sprintf("%s ! account %d %s: %s", t, d.AccountUID, d.State, d.Message)
	case TypeDeadLetter:
		var d DeadLetterData
		if e.DecodeData(&d) != nil {
			break
		}
		return fmt.Sprintf("%s ☠ %s gave up on %s: %s", t, d.Sink, d.Event.ID, d.Reason)
	}
	return fmt.Sprintf("%s %s %s %s", t, e.Type, e.Subject, e.ID)
}

func convLabel(c Conversation) string {
	if c.Name != "" {
		return fmt.Sprintf("[%s · %d]", oneLine(c.Name, 64), c.TalkerID)
	}
	return fmt.Sprintf("[%d/%d]", c.SessionType, c.TalkerID)
}

// oneLine folds line breaks, drops control characters (a stranger's DM
// must not drive the reader's terminal) and cuts s to at most n runes.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
