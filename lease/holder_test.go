//go:build unix

package lease_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/lease"
)

// A process restarted on the same directory holds leases under the same
// name, so it takes back at once a lease its predecessor died holding
// (with a TTL of an hour here, waiting it out would fail the test); a
// second live process on that directory gets a name of its own and
// cannot take it.
func TestHolderTakesBackWhatItsPredecessorHeld(t *testing.T) {
	const ttl = time.Hour
	store := bustest.Provision(t, bustest.StartServer(t).Connect(t), ttl)
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	ctx := context.Background()

	first, release, err := lease.Holder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !lease.New(store.Leases, "acct", first, ttl, log).Renew(ctx) {
		t.Fatal("the first process could not take the lease")
	}
	// While the first lives, another process on dir is someone else.
	other, releaseOther, err := lease.Holder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Fatalf("two live processes on one directory share the name %s", first)
	}
	if lease.New(store.Leases, "acct", other, ttl, log).Renew(ctx) {
		t.Fatal("a second live process took the first one's lease")
	}
	releaseOther()

	release() // the first process dies without releasing its lease
	restarted, release, err := lease.Holder(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if restarted != first {
		t.Fatalf("restarted as %s, want %s", restarted, first)
	}
	if !lease.New(store.Leases, "acct", restarted, ttl, log).Renew(ctx) {
		t.Fatal("the restarted process could not take back its predecessor's lease")
	}
}

func TestHolderInAnUnusableDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if _, _, err := lease.Holder(dir); err == nil {
		t.Fatal("no error for a directory that does not exist")
	}
	garbled := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbled, "lease-holder"), []byte("not a uuid"), 0o600); err != nil {
		t.Fatal(err)
	}
	name, release, err := lease.Holder(garbled)
	if err != nil || len(name) != 36 {
		t.Fatalf("a garbled name file: %q %v, want a fresh name", name, err)
	}
	release()
	again, release, err := lease.Holder(garbled)
	if err != nil || again != name {
		t.Fatalf("the fresh name was not kept: %q then %q (%v)", name, again, err)
	}
	release()
}
