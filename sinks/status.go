package sinks

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sink states, as Status reports them.
const (
	StateStarting   = "starting"   // looking for its consumer and lease
	StateStandby    = "standby"    // another process holds the sink's lease and delivers
	StateDelivering = "delivering" // this process delivers, and the endpoint answers
	StateDown       = "down"       // the endpoint fails; one event probes it
	StateDisabled   = "disabled"   // the endpoint asked to stop (410 Gone), until restart
)

// SinkStatus is what this process knows of one sink.
type SinkStatus struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	// Backlog is how many events wait for the sink (not yet delivered or
	// in flight), read from its consumer every BacklogEvery.
	Backlog uint64 `json:"backlog"`
	// LastDelivery, Delivered and DeadLettered are this process's, since
	// it started.
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	Delivered    uint64     `json:"delivered"`
	DeadLettered uint64     `json:"dead_lettered"`
}

// BacklogEvery is how often each sink's backlog is read from its
// consumer (for Status and the bilibridge_sink_backlog metric).
const BacklogEvery = 15 * time.Second

// board keeps the status of a runtime's sinks.
type board struct {
	mu    sync.Mutex
	sinks map[string]*SinkStatus
	// nudge asks a sink's backlog watcher to read the backlog now (after
	// a delivery or a state change), rather than at its next tick.
	nudge map[string]chan struct{}
}

// poke nudges name's backlog watcher, if it has one and is not already
// nudged.
func (b *board) poke(name string) {
	b.mu.Lock()
	ch := b.nudge[name]
	b.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (b *board) update(name string, fn func(*SinkStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sinks == nil {
		b.sinks = map[string]*SinkStatus{}
	}
	s := b.sinks[name]
	if s == nil {
		s = &SinkStatus{Name: name, Description: name}
		b.sinks[name] = s
	}
	fn(s)
}

// setState records a state change (the same state again is no change).
func (b *board) setState(name, state string, now time.Time) {
	b.update(name, func(s *SinkStatus) {
		if s.State != state {
			s.State, s.Since = state, now
		}
	})
	b.poke(name)
}

// Status is the status of every sink this runtime runs, by name.
func (r *Runtime) Status() []SinkStatus {
	r.board.mu.Lock()
	defer r.board.mu.Unlock()
	out := make([]SinkStatus, 0, len(r.board.sinks))
	for _, s := range r.board.sinks {
		c := *s
		if s.LastDelivery != nil {
			t := *s.LastDelivery
			c.LastDelivery = &t
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b SinkStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// watchBacklog reads the sink's backlog from its consumer until ctx ends.
// Every process does, leased or not: the consumer is shared.
func (r *Runtime) watchBacklog(ctx context.Context, name, durable string) {
	nudge := make(chan struct{}, 1)
	r.board.mu.Lock()
	if r.board.nudge == nil {
		r.board.nudge = map[string]chan struct{}{}
	}
	r.board.nudge[name] = nudge
	r.board.mu.Unlock()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if cons, err := r.cfg.Stream.Consumer(cctx, durable); err == nil {
			if info, err := cons.Info(cctx); err == nil {
				backlog := info.NumPending + uint64(info.NumAckPending)
				r.cfg.Metrics.backlog.WithLabelValues(name).Set(float64(backlog))
				r.board.update(name, func(s *SinkStatus) { s.Backlog = backlog })
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.BacklogEvery):
		case <-nudge:
			// At most a read a second however busy the sink is.
			sleep(ctx, time.Second)
		}
	}
}
