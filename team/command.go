package team

import (
	"strings"
	"time"
)

// Action kinds: what a team member can do to a conversation.
const (
	ActAssign = "assign" // Assignee set ("" = nobody)
	ActClaim  = "claim"  // assign to the member acting
	ActStatus = "status" // Status set, Until with a snooze
	ActNote   = "note"   // Note set
	ActRead   = "read"   // mark read up to the newest message
)

// Action is one thing a member does to a conversation, whichever surface
// it comes from.
type Action struct {
	Kind     string
	Assignee string
	Status   string
	Until    time.Time
	Note     string
}

// Commands lists the chat commands, for help texts.
const Commands = "/claim, /assign NAME, /unassign, /done, /snooze 2h (30m, 1d, tomorrow), /reopen, /note TEXT"

// ParseCommand reads a team command typed in a chat: /claim, /assign
// NAME, /unassign, /done, /snooze DURATION (30m, 2h, 1d, 1w, tomorrow),
// /reopen, /note TEXT. ok is false when text is no team command (another
// command, or a reply to send). now and loc date "tomorrow" (9:00 local
// time). A command with a bad argument is an *InputError.
func ParseCommand(text string, now time.Time, loc *time.Location) (a Action, ok bool, err error) {
	name, arg, _ := strings.Cut(strings.TrimSpace(text), " ")
	arg = strings.TrimSpace(arg)
	// "/claim@bilibridge_bot": the bot's name is the chat's business.
	name, _, _ = strings.Cut(strings.ToLower(name), "@")
	switch name {
	case "/claim":
		return Action{Kind: ActClaim}, true, nil
	case "/unassign":
		return Action{Kind: ActAssign}, true, nil
	case "/assign":
		if arg == "" {
			return Action{}, true, inputErrorf("/assign needs a member's name, e.g. /assign ana (or /claim for yourself)")
		}
		return Action{Kind: ActAssign, Assignee: strings.TrimPrefix(arg, "@")}, true, nil
	case "/done":
		return Action{Kind: ActStatus, Status: "done"}, true, nil
	case "/reopen":
		return Action{Kind: ActStatus, Status: "open"}, true, nil
	case "/snooze":
		until, err := SnoozeUntil(arg, now, loc)
		if err != nil {
			return Action{}, true, err
		}
		return Action{Kind: ActStatus, Status: "snoozed", Until: until}, true, nil
	case "/note":
		if arg == "" {
			return Action{}, true, inputErrorf("/note needs a text, e.g. /note asked for the invoice")
		}
		return Action{Kind: ActNote, Note: arg}, true, nil
	}
	return Action{}, false, nil
}

// SnoozeUntil reads a snooze length: a duration in minutes, hours, days
// or weeks (30m, 2h, 1d, 1w, or Go's 1h30m), or "tomorrow" (9:00 the next
// day in loc). It must end in the future, within 90 days.
func SnoozeUntil(arg string, now time.Time, loc *time.Location) (time.Time, error) {
	arg = strings.ToLower(strings.TrimSpace(arg))
	if loc == nil {
		loc = time.Local
	}
	var until time.Time
	switch {
	case arg == "":
		return time.Time{}, inputErrorf("snooze for how long? e.g. 30m, 2h, 1d or tomorrow")
	case arg == "tomorrow":
		t := now.In(loc).AddDate(0, 0, 1)
		until = time.Date(t.Year(), t.Month(), t.Day(), 9, 0, 0, 0, loc)
	default:
		d, err := parseLength(arg)
		if err != nil {
			return time.Time{}, err
		}
		until = now.Add(d)
	}
	if !until.After(now) || until.Sub(now) > 90*24*time.Hour {
		return time.Time{}, inputErrorf("a snooze must end in the future, within 90 days: %q", arg)
	}
	return until, nil
}

// parseLength reads 30m, 2h, 1d, 1w, or a Go duration.
func parseLength(s string) (time.Duration, error) {
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if u, ok := unit[s[len(s)-1]]; ok {
		var n int
		for _, c := range s[:len(s)-1] {
			if c < '0' || c > '9' || n > 1000 {
				return 0, inputErrorf("%q is no snooze length; try 30m, 2h, 1d or tomorrow", s)
			}
			n = n*10 + int(c-'0')
		}
		if n == 0 {
			return 0, inputErrorf("%q is no snooze length; try 30m, 2h, 1d or tomorrow", s)
		}
		return time.Duration(n) * u, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, inputErrorf("%q is no snooze length; try 30m, 2h, 1d or tomorrow", s)
	}
	return d, nil
}
