// Package send is the way back to Bilibili: a reply typed in Telegram or
// Discord, posted to the HTTP API or given to `bilibridge send` becomes a
// Request, which an Outbox records and queues as a command on stream
// BILI_OUTBOX; each account's Sender sends its commands through send_msg,
// at most once, and publishes the outcome.
//
// Everyone who sends uses the one small interface Submitter.
package send

import (
	"context"
	"fmt"
	"time"

	"github.com/bilibridge/bilibridge/events"
)

// Submitter queues a Request for sending and, with wait > 0, waits up to
// wait for its outcome. *Outbox implements it.
type Submitter interface {
	Submit(ctx context.Context, req Request, wait time.Duration) (*Outcome, error)
}

// Request is a message to send and where to.
type Request struct {
	// AccountUID is the account that sends; zero means the only one the
	// bridge serves.
	AccountUID  int64
	SessionType int    // bilibili.SessionUser or bilibili.SessionGroup
	TalkerID    uint64 // the user's mid or the fan group's id
	// Command carries the text or image_url, the origin and, optionally,
	// the command_id (the idempotency key; a UUIDv7 when empty).
	Command events.SendCommand
}

// ValidationError is a Request that cannot be sent as it is.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string { return e.Reason }

// ConflictError is an idempotency key (command_id) already used for
// another request: another conversation or other content.
type ConflictError struct{ CommandID string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the idempotency key %q was already used for a different message", e.CommandID)
}

// Validate checks r the way the sender will, so that callers hear about
// a bad request at once rather than from a send.failed event.
func (r Request) Validate() error {
	if id := r.Command.CommandID; id != "" && !ValidCommandID(id) {
		return &ValidationError{"idempotency_key (command_id) must be 1 to 128 printable ASCII characters without spaces."}
	}
	if reason := validateSend(r.SessionType, r.TalkerID, r.Command.Text, r.Command.ImageURL); reason != "" {
		return &ValidationError{reason}
	}
	return nil
}

// Outcome is what Submit knows about a command.
type Outcome struct {
	CommandID string
	// Result is the send result once the sender finished the command; nil
	// while it is queued (no wait, or the wait ran out).
	Result *events.SendResultData
	// Succeeded is true when Result is a send.succeeded.
	Succeeded bool
	// FailureClass sorts a failure (when the outcome came with its KV
	// record): a bilibili.Class name, "invalid_command" or "image".
	FailureClass string
}
