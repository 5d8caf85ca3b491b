package sinks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// Status follows a sink through an outage: delivering, down with a
// backlog, back and delivered; the backlog is also a metric.
func TestSinkStatus(t *testing.T) {
	r := newRTRig(t)
	ep := newSwitchable(t)
	sink, err := webhook.New(webhook.Config{URL: ep.srv.URL + "/hook?token=s3cr3t", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rt := sinks.NewRuntime(sinks.RuntimeConfig{Stream: r.store.Events, Publisher: r.pub, Records: r.store.Records,
		ProbeEvery: 100 * time.Millisecond, AckWait: time.Second, BacklogEvery: 20 * time.Millisecond,
		Metrics: sinks.NewMetrics(reg), Since: time.Now().Add(-time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx, sink) }()
	t.Cleanup(func() { cancel(); <-done })
	status := func() sinks.SinkStatus {
		st := rt.Status()
		if len(st) > 1 {
			t.Fatalf("%d sinks in the status", len(st))
		}
		if len(st) == 0 {
			return sinks.SinkStatus{} // not started yet
		}
		return st[0]
	}
	bustest.Eventually(t, "delivering", func() bool { return status().State == sinks.StateDelivering })
	if d := status().Description; !strings.HasPrefix(d, "webhook http://127.0.0.1") || strings.Contains(d, "s3cr3t") {
		t.Errorf("description %q", d)
	}

	ep.down.Store(true)
	for i := range 5 {
		r.publish(uint64(10+i), uint64(100+i), "m")
	}
	bustest.Eventually(t, "down with a backlog of 5", func() bool { s := status(); return s.State == sinks.StateDown && s.Backlog == 5 })
	if got := gauge(t, reg, "bilibridge_sink_backlog"); got != 5 {
		t.Errorf("backlog metric %v, want 5", got)
	}
	ep.down.Store(false)
	bustest.Eventually(t, "back, all delivered", func() bool {
		s := status()
		return s.State == sinks.StateDelivering && s.Backlog == 0 && s.Delivered == 5 && s.LastDelivery != nil
	})
}

// gauge is the value of the one series of the gauge called name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single %s series", name)
	return 0
}
