package lease_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/lease"
)

func TestLeaseExpiresWhenHolderDies(t *testing.T) {
	const ttl = time.Second
	store := bustest.Provision(t, bustest.StartServer(t).Connect(t), ttl)
	log := slog.New(slog.DiscardHandler)
	dead := lease.New(store.Leases, "1", "dead", ttl, log)
	if !dead.Renew(context.Background()) {
		t.Fatal("first holder could not take the lease")
	}
	// The holder dies without releasing. The other cannot take the lease
	// until the TTL passes, then can.
	alive := lease.New(store.Leases, "1", "alive", ttl, log)
	if alive.Renew(context.Background()) {
		t.Fatal("lease taken while held")
	}
	bustest.Eventually(t, "expiry", func() bool { return alive.Renew(context.Background()) })
	if dead.Renew(context.Background()) {
		t.Error("the dead holder got the lease back while another holds it")
	}
}

// A holder that is paused past the TTL (SIGSTOP, a frozen VM) must not
// believe, when it wakes, that it still holds the lease: for that moment
// two pollers (or two sink workers) would run.
func TestHeldTurnsFalseWithoutARecentRenewal(t *testing.T) {
	const ttl = 600 * time.Millisecond
	store := bustest.Provision(t, bustest.StartServer(t).Connect(t), ttl)
	log := slog.New(slog.DiscardHandler)
	paused := lease.New(store.Leases, "acct", "paused", ttl, log)
	if !paused.Renew(context.Background()) || !paused.Held() {
		t.Fatal("could not take the lease")
	}
	// No renewal from here on: the holder is "paused".
	bustest.Eventually(t, "Held to turn false", func() bool { return !paused.Held() })
	// By then the server may not have expired the key yet (the margin),
	// but once it has, another process takes over, and the paused one
	// still does not count itself a holder.
	other := lease.New(store.Leases, "acct", "other", ttl, log)
	bustest.Eventually(t, "takeover", func() bool { return other.Renew(context.Background()) })
	if paused.Held() {
		t.Fatal("the paused holder still believes it holds the lease after another took it")
	}
	if paused.Renew(context.Background()) {
		t.Fatal("the paused holder renewed a lease another process holds")
	}
	if !other.Held() {
		t.Fatal("the new holder does not hold the lease")
	}
}

// A holder that keeps renewing keeps the lease across many TTLs.
func TestKeepHoldsTheLease(t *testing.T) {
	const ttl = 300 * time.Millisecond
	store := bustest.Provision(t, bustest.StartServer(t).Connect(t), ttl)
	log := slog.New(slog.DiscardHandler)
	l := lease.New(store.Leases, "acct", "keeper", ttl, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Keep(ctx, nil) }()
	bustest.Eventually(t, "the lease", l.Held)
	other := lease.New(store.Leases, "acct", "other", ttl, log)
	for range 10 {
		time.Sleep(ttl / 2)
		if other.Renew(context.Background()) {
			t.Fatal("another process took a lease that is being kept")
		}
	}
	cancel()
	<-done
	// Released at stop: the other takes it at once, not after the TTL.
	if !other.Renew(context.Background()) {
		t.Fatal("the lease was not released at stop")
	}
}

// A lease taken back from a predecessor under the same name (or after a
// renewal whose answer was lost) is written again: its TTL on the server
// counts from the taking back, as Held does, so nobody else can take it
// while this process believes it holds it.
func TestTakenBackLeaseCountsFromNow(t *testing.T) {
	const ttl = time.Second
	store := bustest.Provision(t, bustest.StartServer(t).Connect(t), ttl)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	if !lease.New(store.Leases, "acct", "same", ttl, log).Renew(ctx) {
		t.Fatal("the first process could not take the lease")
	}
	time.Sleep(800 * time.Millisecond) // then it dies
	restarted := lease.New(store.Leases, "acct", "same", ttl, log)
	if !restarted.Renew(ctx) {
		t.Fatal("the restarted process could not take the lease back")
	}
	time.Sleep(600 * time.Millisecond) // past the first write's TTL
	other := lease.New(store.Leases, "acct", "other", ttl, log)
	if restarted.Held() && other.Renew(ctx) {
		t.Fatal("another process took the lease while the restarted one believes it holds it")
	}
}
