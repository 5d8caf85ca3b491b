// Package team is the shared inbox: who is on the team (Members), and for
// every conversation what the team knows about it (Conversation): who
// answers it, whether it is open, snoozed or done, the internal notes,
// what was read, the last message. That state is a projection of stream
// BILI: every change is a team event there (com.bilibili.team.*), so
// every surface (Telegram, Discord, the API, the browser, webhooks) sees
// it, it survives restarts, and it is rebuilt from the stream if its KV
// bucket is lost.
package team

import (
	"errors"
	"fmt"
)

// Errors callers branch on (the API answers them with 4xx).
var (
	// ErrNoMember: no member has that name.
	ErrNoMember = errors.New("no such team member")
	// ErrMemberExists: a member of that name exists already.
	ErrMemberExists = errors.New("a team member of that name exists already")
	// ErrNoConversation: the bridge has never seen that conversation.
	ErrNoConversation = errors.New("no such conversation")
	// ErrBadLogin: unknown member or wrong password (which, is not said).
	ErrBadLogin = errors.New("wrong member name or password")
	// ErrBadToken: the token is unknown, revoked or malformed.
	ErrBadToken = errors.New("unknown or revoked token")
)

// InputError is a request that cannot be carried out as it is: a snooze
// that is no duration, an empty note. Its text says what to fix.
type InputError struct{ Reason string }

func (e *InputError) Error() string { return e.Reason }

func inputErrorf(format string, args ...any) error {
	return &InputError{Reason: fmt.Sprintf(format, args...)}
}
