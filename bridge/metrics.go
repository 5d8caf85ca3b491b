package bridge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CallMetrics counts Bilibili calls by endpoint and code; its Observe
// method plugs into bilibili.Config.Observe.
type CallMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewCallMetrics registers the Bilibili call metrics with reg.
func NewCallMetrics(reg prometheus.Registerer) *CallMetrics {
	m := &CallMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bilibridge_bilibili_calls_total",
			Help: "Calls to Bilibili by endpoint and response code (-1: no response).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bilibridge_bilibili_call_duration_seconds",
			Help:    "Duration of calls to Bilibili.",
			Buckets: prometheus.ExponentialBuckets(0.025, 2, 10),
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.duration)
	}
	return m
}

// Observe records one call.
func (m *CallMetrics) Observe(endpoint string, code int, took time.Duration) {
	m.calls.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(took.Seconds())
}
