package team

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/events"
)

// historyIndex locates a conversation's messages in stream BILI: the
// stream can be read by sequence, not by conversation backwards, so the
// projection keeps, for the conversations someone opened, the sequence
// of each message event.
type historyIndex struct {
	refs     []msgRef // ascending by stream sequence
	recalled map[uint64]bool
}

type msgRef struct {
	seq, key, seqno uint64
}

// add indexes the event stored at seq, and returns the message it
// carries (ok false for a recall or what does not decode).
func (h *historyIndex) add(seq uint64, ev events.Event) (d events.MessageData, ok bool) {
	switch ev.Type {
	case events.TypeMessage:
		if ev.DecodeData(&d) != nil {
			return d, false
		}
		i, found := slices.BinarySearchFunc(h.refs, seq, func(r msgRef, s uint64) int {
			switch {
			case r.seq < s:
				return -1
			case r.seq > s:
				return 1
			}
			return 0
		})
		if !found {
			h.refs = slices.Insert(h.refs, i, msgRef{seq: seq, key: d.Message.MsgKey, seqno: d.Message.Seqno})
		}
		return d, true
	case events.TypeRecall:
		var r events.RecallData
		if ev.DecodeData(&r) == nil {
			h.recalled[r.RecalledMsgKey] = true
		}
	}
	return d, false
}

// maxIndexes bounds the conversations whose history is indexed; the one
// unused longest is dropped (and built again when opened again).
const maxIndexes = 2000

// historyOf returns key's index, building it on first use from the
// stream (messages and recalls of the conversation, from the start). The
// call that builds it also gets the newest messages it read on the way
// (by stream sequence), so that the first page is not read twice.
func (p *Projection) historyOf(ctx context.Context, key events.ConversationKey) (*historyIndex, map[uint64]events.MessageData, error) {
	p.mu.Lock()
	if h, ok := p.history[key]; ok {
		p.mu.Unlock()
		return h, nil, nil
	}
	h := &historyIndex{recalled: map[uint64]bool{}}
	// Registered first, so that what the consumer applies meanwhile is
	// indexed too; the build below adds what came before (add skips a
	// sequence it has).
	if len(p.history) >= maxIndexes {
		for k := range p.history { // an arbitrary one: good enough for a cache
			delete(p.history, k)
			break
		}
	}
	p.history[key] = h
	p.mu.Unlock()

	newest, err := p.index(ctx, key, h)
	if err != nil {
		p.mu.Lock()
		delete(p.history, key)
		p.mu.Unlock()
		return nil, nil, fmt.Errorf("indexing the history of %s: %w", key, err)
	}
	return h, newest, nil
}

// keptFromIndexing is how many of the newest messages the build of an
// index hands to the first page: the API's largest page.
const keptFromIndexing = 200

// index reads key's messages and recalls from the stream into h.
func (p *Projection) index(ctx context.Context, key events.ConversationKey, h *historyIndex) (map[uint64]events.MessageData, error) {
	s := p.cfg.Subjects
	// One literal subject per read: the server then uses its index of
	// subjects and skips the blocks without it; a wildcard filter, or
	// two filters, make it look at every message (see Subjects.Stream).
	type read struct {
		seq uint64
		msg events.MessageData
	}
	var kept []read
	err := bus.Read(ctx, p.cfg.Stream, []string{s.Message(key.AccountUID, key.SessionType, key.TalkerID)}, 1, func(m bus.Stored) error {
		p.mu.Lock()
		d, ok := h.add(m.Seq, m.Event)
		p.mu.Unlock()
		if ok {
			if len(kept) == 2*keptFromIndexing {
				kept = append(kept[:0], kept[keptFromIndexing:]...)
			}
			kept = append(kept, read{m.Seq, d})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Most conversations have no recall: one lookup in the server's
	// subject index says so, cheaper than a consumer that finds nothing.
	recall := s.Recall(key.AccountUID, key.SessionType, key.TalkerID)
	switch _, err := p.cfg.Stream.GetLastMsgForSubject(ctx, recall); {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return nil, err
	default:
		err := bus.Read(ctx, p.cfg.Stream, []string{recall}, 1, func(m bus.Stored) error {
			p.mu.Lock()
			h.add(m.Seq, m.Event)
			p.mu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	newest := make(map[uint64]events.MessageData, min(len(kept), keptFromIndexing))
	for _, r := range kept[max(0, len(kept)-keptFromIndexing):] {
		newest[r.seq] = r.msg
	}
	return newest, nil
}

// page returns up to limit messages of key before the message before (0:
// the newest), oldest first, read from the stream; more reports whether
// the stream holds older ones.
func (p *Projection) page(ctx context.Context, key events.ConversationKey, before uint64, limit int) (msgs []events.MessageData, found, more bool, err error) {
	h, newest, err := p.historyOf(ctx, key)
	if err != nil {
		return nil, false, false, err
	}
	p.mu.RLock()
	end := len(h.refs)
	if before != 0 {
		end = slices.IndexFunc(h.refs, func(r msgRef) bool { return r.key == before })
	}
	var refs []msgRef
	if end >= 0 {
		refs = slices.Clone(h.refs[max(0, end-limit):end])
		more = end-limit > 0
	}
	recalled := make(map[uint64]bool, len(h.recalled))
	for k := range h.recalled {
		recalled[k] = true
	}
	p.mu.RUnlock()
	if end < 0 {
		return nil, false, false, nil
	}
	for _, r := range refs {
		d, ok := newest[r.seq]
		if !ok {
			if d, ok = p.message(ctx, r.seq); !ok {
				continue // aged out of the stream since
			}
		}
		if recalled[d.Message.MsgKey] {
			d.Message.Status = events.StatusRecalled
		}
		msgs = append(msgs, d)
	}
	return msgs, true, more, nil
}

// message reads the message event stored at seq.
func (p *Projection) message(ctx context.Context, seq uint64) (events.MessageData, bool) {
	var d events.MessageData
	raw, err := p.cfg.Stream.GetMsg(ctx, seq)
	if err != nil {
		return d, false
	}
	ev, err := events.Parse(raw.Data)
	if err != nil || ev.DecodeData(&d) != nil {
		return d, false
	}
	return d, true
}

// oldestSeqno is the Bilibili seqno of the oldest message of key in the
// stream, or 0.
func (p *Projection) oldestSeqno(ctx context.Context, key events.ConversationKey) uint64 {
	h, _, err := p.historyOf(ctx, key)
	if err != nil {
		return 0
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(h.refs) == 0 {
		return 0
	}
	return h.refs[0].seqno
}
