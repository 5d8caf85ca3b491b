package poller

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the poller's Prometheus metrics.
type Metrics struct {
	polls    *prometheus.CounterVec
	events   *prometheus.CounterVec
	lag      prometheus.Histogram
	lastGood *prometheus.GaugeVec
	login    *prometheus.GaugeVec
	skips    *prometheus.CounterVec
	lost     prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bilibridge_polls_total", Help: "Polls of Bilibili, by result.",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bilibridge_events_published_total", Help: "Events published to JetStream, by type.",
		}, []string{"type"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bilibridge_poll_lag_seconds",
			Help:    "Time from a message's Bilibili timestamp to its publish.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600},
		}),
		lastGood: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bilibridge_last_good_poll_timestamp_seconds", Help: "Unix time of the last successful poll, by account.",
		}, []string{"uid"}),
		login: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bilibridge_login_valid", Help: "1 while the account's Bilibili login works, 0 once Bilibili answered -101 (run bilibridge login).",
		}, []string{"uid"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bilibridge_conversations_skipped_total", Help: "Conversations Bilibili refused for good (700013, 700014), whose messages were skipped, by code.",
		}, []string{"code"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bilibridge_messages_skipped_total", Help: "Unread messages not forwarded because their conversation could not be read any more.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.polls, m.events, m.lag, m.lastGood, m.login, m.skips, m.lost)
	}
	return m
}

func (m *Metrics) polled(uid int64, result string, at time.Time) {
	m.polls.WithLabelValues(result).Inc()
	id := strconv.FormatInt(uid, 10)
	switch result {
	case "ok":
		m.login.WithLabelValues(id).Set(1)
	case "login_expired":
		m.login.WithLabelValues(id).Set(0)
	}
	if !at.IsZero() {
		m.lastGood.WithLabelValues(id).Set(float64(at.UnixNano()) / 1e9)
	}
}

func (m *Metrics) published(typ string, sent, now time.Time) {
	m.events.WithLabelValues(typ).Inc()
	m.lag.Observe(now.Sub(sent).Seconds())
}

func (m *Metrics) skipped(code, unread int) {
	m.skips.WithLabelValues(strconv.Itoa(code)).Inc()
	m.lost.Add(float64(unread))
}
