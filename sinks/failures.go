package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/kvkey"
)

// failure is what is known about a head event that failed: when it
// first failed (the give-up clock runs from there) and how often it was
// really tried. It is kept in KV, so that neither a restart nor a lease
// handover resets the clock or counts a hand-back as an attempt.
type failure struct {
	First     time.Time `json:"first_failure"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	// successes is the endpoint's success count at the last failure;
	// lonely counts the failures after which others had succeeded: from
	// the second, the failure is taken to be this event's own.
	successes  uint64
	lonely     int
	retryAfter time.Duration // what the platform asked for at the last failure
	loaded     bool          // read from KV (or known absent)
	stored     bool          // written to KV: delete it when done
}

// failures keeps failure records in a KV bucket under
// delivery.<sink>.<event id>; without a bucket they live in memory only.
type failures struct {
	kv   jetstream.KeyValue
	sink string
}

func (f failures) key(eventID string) string {
	return kvkey.Join("delivery", f.sink, eventID)
}

// load fills fl from KV once.
func (f failures) load(ctx context.Context, eventID string, fl *failure) error {
	if fl.loaded || f.kv == nil {
		fl.loaded = true
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	e, err := f.kv.Get(ctx, f.key(eventID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return err
	default:
		var stored failure
		if json.Unmarshal(e.Value(), &stored) == nil {
			fl.First, fl.Attempts, fl.LastError, fl.stored = stored.First, stored.Attempts, stored.LastError, true
		}
	}
	fl.loaded = true
	return nil
}

// save writes fl. A write that fails costs only precision (a restart
// would count from a later first failure), so it is not retried.
func (f failures) save(ctx context.Context, eventID string, fl *failure) error {
	if f.kv == nil {
		return nil
	}
	b, err := json.Marshal(fl)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := f.kv.Put(ctx, f.key(eventID), b); err != nil {
		return err
	}
	fl.stored = true
	return nil
}

// clear removes fl's record once its event is done.
func (f failures) clear(ctx context.Context, eventID string, fl *failure) {
	if f.kv == nil || !fl.stored {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = f.kv.Delete(ctx, f.key(eventID))
	fl.stored = false
}
