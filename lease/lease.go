// Package lease gives one process at a time a job across several bridge
// processes on one NATS: polling an account, delivering to a sink. A lease
// is a key in a KV bucket whose TTL expires it unless the holder renews it.
package lease

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is held by one process at a time; a holder that dies is replaced
// within about two TTLs, one that stops hands it over at once.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	log    *slog.Logger
	rev    uint64
	held   atomic.Bool
	// until is when this process stops counting on the lease (unix
	// nanoseconds): the start of the last good renewal plus the TTL less
	// a margin.
	until atomic.Int64
}

// New returns a lease on key, held in the name of holder. ttl must be
// the TTL of the bucket kv: the lease counts as held for less than ttl
// after each renewal.
func New(kv jetstream.KeyValue, key, holder string, ttl time.Duration, log *slog.Logger) *Lease {
	return &Lease{kv: kv, key: key, holder: holder, ttl: ttl, log: log}
}

// Held reports whether this process holds the lease: its last renewal
// succeeded and is recent enough that the key cannot have expired on
// the server yet. A process paused past the TTL (a stopped VM, a long
// GC, SIGSTOP) wakes up not holding it, before it renews again, so it
// cannot act beside the process that took over.
func (l *Lease) Held() bool {
	return l.held.Load() && time.Now().UnixNano() < l.until.Load()
}

// margin is how long before the server would expire the key that this
// process stops relying on it: clock rates and the renewal's own
// round trip.
func (l *Lease) margin() time.Duration { return max(l.ttl/5, 50*time.Millisecond) }

func (l *Lease) renewed(start time.Time, rev uint64) {
	l.rev = rev
	l.until.Store(start.Add(l.ttl - l.margin()).UnixNano())
	l.held.Store(true)
}

// Renew acquires the lease or extends it, and reports whether it is held.
func (l *Lease) Renew(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, min(5*time.Second, max(l.ttl/3, time.Second)))
	defer cancel()
	start := time.Now()
	if l.held.Load() {
		rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), l.rev)
		if err == nil {
			l.renewed(start, rev)
			return true
		}
		// A revision mismatch or a missing key means it expired and
		// someone may have taken it; a mismatch under our own name is a
		// write of ours the server applied late.
		l.held.Store(false)
		if l.reclaim(ctx, start) {
			return true
		}
		l.log.Warn("lease lost", "key", l.key, "err", err)
	}
	rev, err := l.kv.Create(ctx, l.key, []byte(l.holder))
	switch {
	case err == nil:
		l.renewed(start, rev)
	case errors.Is(err, jetstream.ErrKeyExists) && l.reclaim(ctx, start):
	case errors.Is(err, jetstream.ErrKeyExists):
		return false
	default:
		l.log.Warn("lease unavailable", "key", l.key, "err", err)
		return false
	}
	l.log.Info("lease acquired", "key", l.key, "holder", l.holder)
	return true
}

// reclaim takes the lease back when its key already names this holder:
// a renewal whose answer was lost, or a predecessor under the same name
// (Holder) that died holding it. The key is written again, so that its
// TTL, and Held, count from now rather than from the old write.
func (l *Lease) reclaim(ctx context.Context, start time.Time) bool {
	e, err := l.kv.Get(ctx, l.key)
	if err != nil || string(e.Value()) != l.holder {
		return false
	}
	rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), e.Revision())
	if err != nil {
		return false
	}
	l.renewed(start, rev)
	return true
}

// Keep renews the lease every TTL/3 until ctx ends, then releases it so
// another process can take over at once.
func (l *Lease) Keep(ctx context.Context, changed func(held bool)) {
	every := max(l.ttl/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	was := l.Held()
	for {
		now := l.Renew(ctx)
		if now != was && changed != nil {
			changed(now)
		}
		was = now
		select {
		case <-ctx.Done():
			l.Release()
			return
		case <-t.C:
		}
	}
}

// Release gives the lease up if held.
func (l *Lease) Release() {
	if !l.held.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
		l.log.Debug("releasing lease", "key", l.key, "err", err)
	}
}
