package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
)

func TestProvisionIsIdempotentAndFollowsChangedSettings(t *testing.T) {
	conn := bustest.StartServer(t).Connect(t)
	ctx := context.Background()
	cfg := bus.StoreConfig{Subjects: events.Subjects{}, MaxAge: 48 * time.Hour, LeaseTTL: 10 * time.Second}
	first, err := bus.Provision(ctx, conn.JS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Cursors.Put(ctx, "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	cfg.MaxAge = 72 * time.Hour
	cfg.LeaseTTL = 20 * time.Second
	second, err := bus.Provision(ctx, conn.JS, cfg)
	if err != nil {
		t.Fatalf("second provisioning with changed settings: %v", err)
	}
	info, err := second.Events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 72*time.Hour || info.Config.Duplicates != time.Hour {
		t.Errorf("BILI max age %s, duplicate window %s", info.Config.MaxAge, info.Config.Duplicates)
	}
	status, err := second.Leases.Status(ctx)
	if err != nil || status.TTL() != 20*time.Second {
		t.Errorf("lease TTL %v (%v)", status, err)
	}
	if e, err := second.Cursors.Get(ctx, "k"); err != nil || string(e.Value()) != "1" {
		t.Errorf("cursor lost across provisioning: %v", err)
	}
	out, err := second.Outbox.Info(ctx)
	if err != nil || out.Config.Retention.String() != "WorkQueue" {
		t.Errorf("outbox retention %v (%v)", out.Config.Retention, err)
	}
}
