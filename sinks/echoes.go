package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// Echoes keeps a chat sink from posting back the notes its own users
// typed there (/note in Telegram or Discord): such a note is already in
// the chat, while the same note made elsewhere (the browser, the API,
// the other chat) must be posted. Each note typed is counted under a key
// of where, who and what (the note event says who wrote it, not where);
// the count lives in a KV bucket (Records), so that restarts and several
// processes agree, and the note event follows within moments, long before
// the key expires.
type Echoes struct {
	KV jetstream.KeyValue
	// Prefix names the chat: "tg.noted.<chat>", "dc.noted.<channel>".
	Prefix string
}

// Key is the record of a note by typed in conversation conv: it matches
// on the author and the trimmed text.
func (e Echoes) Key(conv events.ConversationKey, by events.Actor, text string) string {
	h := sha256.Sum256([]byte(by.Member + "\x00" + strings.TrimSpace(text)))
	return e.Prefix + "." + conv.String() + "." + hex.EncodeToString(h[:12])
}

// Mark counts one more note typed under key: the same note typed twice is
// skipped twice.
func (e Echoes) Mark(ctx context.Context, key string) error {
	for range 5 {
		entry, err := e.KV.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = e.KV.Create(ctx, key, []byte("1"))
		case err == nil:
			n, _ := strconv.Atoi(string(entry.Value()))
			_, err = e.KV.Update(ctx, key, []byte(strconv.Itoa(n+1)), entry.Revision())
		}
		if err == nil {
			return nil
		}
		if !revisionConflict(err) {
			return fmt.Errorf("recording a note typed here: %w", err)
		}
		// Another writer came between: read again.
	}
	return errors.New("recording a note typed here: too much contention")
}

// Unmark counts one note of key down: a note the team did not take, or
// one whose echo was skipped.
func (e Echoes) Unmark(ctx context.Context, key string) error {
	for range 5 {
		entry, err := e.KV.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(entry.Value()))
		if n <= 1 {
			err = e.KV.Delete(ctx, key, jetstream.LastRevision(entry.Revision()))
		} else {
			_, err = e.KV.Update(ctx, key, []byte(strconv.Itoa(n-1)), entry.Revision())
		}
		if err == nil || !revisionConflict(err) {
			return err
		}
	}
	return errors.New("counting down a note typed here: too much contention")
}

// Take reports whether a note event is the echo of a note typed under key.
// If so, it runs handled (which records the event as done, so that a
// redelivery posts nothing either) before it counts the note down: a
// crash between the two posts nothing. A failed count-down is only
// returned as countErr; the echo is skipped all the same.
func (e Echoes) Take(ctx context.Context, key string, handled func(context.Context) error) (echo bool, countErr, err error) {
	_, err = e.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("reading the record of a note typed here: %w", err)
	}
	if err := handled(ctx); err != nil {
		return false, nil, err
	}
	return true, e.Unmark(ctx, key), nil
}

// revisionConflict: another writer changed the key since it was read.
func revisionConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}
