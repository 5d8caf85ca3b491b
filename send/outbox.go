package send

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
)

// Outbox records and queues send commands for the accounts a bridge
// serves: the path shared by the chat sinks, the HTTP API and
// `bilibridge send`.
type Outbox struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// Records is the KV bucket of command records (Store.Records). Submit
	// records each command before queuing it, so that a reused
	// idempotency key is recognised and a finished command is answered
	// from its record. Required.
	Records  jetstream.KeyValue
	Subjects events.Subjects
	// Accounts are the accounts it queues for. A Request names one when
	// there are several.
	Accounts []int64
	// PublishTimeout bounds queuing the command; default 10s.
	PublishTimeout time.Duration
}

// queuedAs reports whether the command stored at seq in the outbox is
// data: a duplicate of this very command is a publish of this call whose
// ack was lost and that was retried (or someone queued exactly the
// same), not a conflict.
func (o *Outbox) queuedAs(ctx context.Context, seq uint64, data []byte) bool {
	stream, err := o.JS.Stream(ctx, bus.StreamOutbox)
	if err != nil {
		return false
	}
	m, err := stream.GetMsg(ctx, seq)
	return err == nil && bytes.Equal(m.Data, data)
}

// Submit records req as a queued command (KV Records) and queues it on
// stream BILI_OUTBOX with Nats-Msg-Id = OutboxMsgID(account, command_id),
// so a retry with the same command_id inside the stream's duplicate
// window (24h) is dropped, and the sender sends a command_id at most once
// in any case. The same command_id asked again for the same conversation
// and content is the same command (its outcome is returned); for anything
// else it is a *ConflictError. With wait > 0 Submit then waits up to wait
// for the result; a command that already finished returns its recorded
// result at once. Other errors are a *ValidationError for a bad request,
// or a failure to queue.
func (o *Outbox) Submit(ctx context.Context, req Request, wait time.Duration) (*Outcome, error) {
	uid, err := o.account(req.AccountUID)
	if err != nil {
		return nil, err
	}
	req.AccountUID = uid
	if err := req.Validate(); err != nil {
		return nil, err
	}
	cmd := req.Command
	if cmd.CommandID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		cmd.CommandID = id.String()
	}
	out := &Outcome{CommandID: cmd.CommandID}
	resultID := events.SendResultID(req.AccountUID, cmd.CommandID)
	created, err := o.record(ctx, cmd.CommandID, req)
	if err != nil {
		return nil, err
	}

	// Subscribe before publishing, so a fast result cannot slip by.
	var results chan *nats.Msg
	if wait > 0 && o.NC != nil {
		results = make(chan *nats.Msg, 64)
		sub, err := o.NC.ChanSubscribe(o.Subjects.Sent(req.AccountUID, req.SessionType, req.TalkerID), results)
		if err != nil {
			return nil, fmt.Errorf("subscribing to send results: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if o.recorded(ctx, req.AccountUID, out) {
		return out, nil
	}

	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	timeout := o.PublishTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	pub := &bus.Publisher{JS: o.JS}
	ack, err := pub.PublishRaw(pctx, o.Subjects.Send(req.AccountUID, req.SessionType, req.TalkerID), OutboxMsgID(req.AccountUID, cmd.CommandID), data, nil)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("queuing the send command: %w", err)
	}
	if ack.Duplicate && created && !o.queuedAs(ctx, ack.Sequence, data) {
		// Someone queued this command_id without a record (straight onto
		// NATS): it is not the request this caller made.
		o.forget(ctx, req.AccountUID, cmd.CommandID)
		return nil, &ConflictError{CommandID: cmd.CommandID}
	}
	if wait <= 0 {
		return out, nil
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	// The result event is what normally ends the wait; the record is
	// checked now and then in case the event went by unseen (a reconnect).
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return out, nil
		case <-timer.C:
			o.recorded(ctx, req.AccountUID, out)
			return out, nil
		case <-poll.C:
			if o.recorded(ctx, req.AccountUID, out) {
				return out, nil
			}
		case m := <-results:
			ev, err := events.Parse(m.Data)
			if err != nil || ev.ID != resultID {
				continue
			}
			// The record (written before the event) also says why it failed.
			if o.recorded(ctx, req.AccountUID, out) {
				return out, nil
			}
			var res events.SendResultData
			if err := ev.DecodeData(&res); err != nil {
				continue
			}
			out.Result, out.Succeeded = &res, ev.Type == events.TypeSendSucceeded
			return out, nil
		}
	}
}

// record creates the command's record, state queued, unless it exists:
// then the request must be the same one (same conversation and content).
// It reports whether it created the record.
func (o *Outbox) record(ctx context.Context, id string, req Request) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec := &record{CommandID: id, State: cmdQueued, SessionType: req.SessionType, TalkerID: req.TalkerID, RequestHash: requestHash(req)}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	key := CommandKey(req.AccountUID, id)
	_, err = o.Records.Create(ctx, key, b)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("recording the send command: %w", err)
	}
	old, _, err := loadRecord(ctx, o.Records, key)
	if err != nil {
		return false, fmt.Errorf("reading the send command's record: %w", err)
	}
	if old != nil && old.RequestHash != "" && old.RequestHash != rec.RequestHash {
		return false, &ConflictError{CommandID: id}
	}
	return false, nil
}

// forget removes a record record created for nothing.
func (o *Outbox) forget(ctx context.Context, uid int64, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = o.Records.Delete(ctx, CommandKey(uid, id))
}

// requestHash identifies a request's conversation and content.
func requestHash(req Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d\x00%s\x00%s", req.SessionType, req.TalkerID, req.Command.Text, req.Command.ImageURL)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// recorded fills out from the command's KV record when it is done.
func (o *Outbox) recorded(ctx context.Context, uid int64, out *Outcome) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec, _, err := loadRecord(ctx, o.Records, CommandKey(uid, out.CommandID))
	if err != nil || !rec.done() {
		return false
	}
	out.Result, out.Succeeded, out.FailureClass = rec.Result, rec.State == cmdSucceeded, rec.FailureClass
	return true
}

// account picks the account a request sends as: uid, or the only one.
func (o *Outbox) account(uid int64) (int64, error) {
	if uid == 0 {
		if len(o.Accounts) == 1 {
			return o.Accounts[0], nil
		}
		return 0, &ValidationError{Reason: fmt.Sprintf("account_uid is required: this bridge serves %d accounts", len(o.Accounts))}
	}
	if !slices.Contains(o.Accounts, uid) {
		return 0, &ValidationError{Reason: fmt.Sprintf("account_uid %d is not an account this bridge serves", uid)}
	}
	return uid, nil
}

// Command is what is known of a send command: GET /api/v1/messages/{id}.
type Command struct {
	CommandID   string `json:"command_id"`
	AccountUID  int64  `json:"account_uid,string"`
	SessionType int    `json:"session_type"`
	TalkerID    uint64 `json:"talker_id,string"`
	// State is queued (accepted, not yet taken by the sender), sending,
	// succeeded or failed.
	State    string   `json:"state"`
	Attempts int      `json:"attempts"`
	MsgKey   string   `json:"msg_key,omitempty"`
	MsgKeys  []string `json:"msg_keys,omitempty"`
	// ErrorCode is Bilibili's code of a failure (0 when the bridge
	// refused the command itself); FailureClass sorts it.
	ErrorCode    int        `json:"error_code,omitempty"`
	Error        string     `json:"error,omitempty"`
	FailureClass string     `json:"failure_class,omitempty"`
	Finished     *time.Time `json:"finished_at,omitempty"`
}

// ErrNoCommand is a command_id no account of the outbox knows.
var ErrNoCommand = errors.New("no send command with this id")

// Command looks the command up in the records of account uid, or of every
// account when uid is 0.
func (o *Outbox) Command(ctx context.Context, uid int64, commandID string) (*Command, error) {
	if !ValidCommandID(commandID) {
		return nil, ErrNoCommand
	}
	accounts := o.Accounts
	if uid != 0 {
		accounts = []int64{uid}
	}
	for _, a := range accounts {
		rec, _, err := loadRecord(ctx, o.Records, CommandKey(a, commandID))
		if err != nil {
			return nil, fmt.Errorf("reading the send command's record: %w", err)
		}
		if rec == nil {
			continue
		}
		c := &Command{CommandID: commandID, AccountUID: a, SessionType: rec.SessionType, TalkerID: rec.TalkerID,
			State: rec.State, Attempts: rec.Attempts, MsgKeys: rec.MsgKeys, FailureClass: rec.FailureClass}
		if c.State == "" {
			c.State = cmdQueued
		}
		if r := rec.Result; r != nil {
			if r.MsgKey != 0 {
				c.MsgKey = strconv.FormatUint(r.MsgKey, 10)
			}
			if len(r.MsgKeys) > 0 {
				c.MsgKeys = r.MsgKeys
			}
			c.ErrorCode, c.Error = r.ErrorCode, r.Error
		}
		if !rec.Finished.IsZero() {
			f := rec.Finished
			c.Finished = &f
		}
		return c, nil
	}
	return nil, ErrNoCommand
}
