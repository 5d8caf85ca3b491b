package sinks

import (
	"strings"

	"github.com/bilibridge/bilibridge/events"
)

// maxAssigneeInName bounds the assignee's name in a topic's or thread's
// name (platforms bound the whole name: Telegram 128, Discord 100).
const maxAssigneeInName = 32

// TeamPrefix is what a conversation's Telegram topic or Discord thread
// name starts with to show its team state, the same on both: a done or
// snoozed mark, then the assignee in brackets, as in
// "✅ [ana] 社会易姐QwQ · 293793435". Open and unassigned: "".
func TeamPrefix(assignee, status string) string {
	var b strings.Builder
	switch status {
	case events.ConversationDone:
		b.WriteString("✅ ")
	case events.ConversationSnoozed:
		b.WriteString("💤 ")
	}
	if a := strings.Join(strings.Fields(assignee), " "); a != "" {
		if r := []rune(a); len(r) > maxAssigneeInName {
			a = string(r[:maxAssigneeInName-1]) + "…"
		}
		b.WriteString("[" + a + "] ")
	}
	return b.String()
}
