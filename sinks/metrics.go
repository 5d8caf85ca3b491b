package sinks

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the per-sink delivery metrics.
type Metrics struct {
	delivered, retried, failed, dead *prometheus.CounterVec
	latency                          *prometheus.HistogramVec
	up, backlog                      *prometheus.GaugeVec
}

// NewMetrics registers the sink metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sink"})
	}
	m := &Metrics{
		delivered: counter("bilibridge_sink_delivered_total", "Events delivered, by sink."),
		retried:   counter("bilibridge_sink_retries_total", "Delivery attempts that failed and will be retried, by sink."),
		failed:    counter("bilibridge_sink_failed_total", "Events that failed for good (permanent error, or failing longer than DELIVERY_GIVE_UP), by sink."),
		dead:      counter("bilibridge_sink_dead_letters_total", "Events dead-lettered, by sink."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bilibridge_sink_delivery_latency_seconds",
			Help:    "Time from an event's publish to its delivery, by sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"sink"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bilibridge_sink_up",
			Help: "1 while the sink's endpoint answers, 0 while it fails and is being probed.",
		}, []string{"sink"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bilibridge_sink_backlog",
			Help: "Events waiting for the sink (not yet delivered, or in flight), read from its consumer.",
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.retried, m.failed, m.dead, m.latency, m.up, m.backlog)
	}
	return m
}
