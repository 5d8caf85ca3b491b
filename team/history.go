package team

import (
	"context"
	"fmt"
	"slices"

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

func (h *historyIndex) add(seq uint64, ev events.Event) {
	switch ev.Type {
	case events.TypeMessage:
		var d events.MessageData
		if ev.DecodeData(&d) != nil {
			return
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
	case events.TypeRecall:
		var d events.RecallData
		if ev.DecodeData(&d) == nil {
			h.recalled[d.RecalledMsgKey] = true
		}
	}
}

// maxIndexes bounds the conversations whose history is indexed; the one
// unused longest is dropped (and built again when opened again).
const maxIndexes = 2000

// historyOf returns key's index, building it on first use from the
// stream (messages and recalls of the conversation, from the start).
func (p *Projection) historyOf(ctx context.Context, key events.ConversationKey) (*historyIndex, error) {
	p.mu.Lock()
	if h, ok := p.history[key]; ok {
		p.mu.Unlock()
		return h, nil
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

	s := p.cfg.Subjects
	// One literal subject per read: the server then uses its index of
	// subjects and skips the blocks without it; a wildcard filter, or
	// two filters, make it look at every message (see Subjects.Stream).
	var err error
	for _, subject := range []string{s.Message(key.AccountUID, key.SessionType, key.TalkerID), s.Recall(key.AccountUID, key.SessionType, key.TalkerID)} {
		err = bus.Read(ctx, p.cfg.Stream, []string{subject}, 1, func(m bus.Stored) error {
			p.mu.Lock()
			h.add(m.Seq, m.Event)
			p.mu.Unlock()
			return nil
		})
		if err != nil {
			break
		}
	}
	if err != nil {
		p.mu.Lock()
		delete(p.history, key)
		p.mu.Unlock()
		return nil, fmt.Errorf("indexing the history of %s: %w", key, err)
	}
	return h, nil
}

// page returns up to limit messages of key before the message before (0:
// the newest), oldest first, read from the stream; more reports whether
// the stream holds older ones.
func (p *Projection) page(ctx context.Context, key events.ConversationKey, before uint64, limit int) (msgs []events.MessageData, found, more bool, err error) {
	h, err := p.historyOf(ctx, key)
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
		raw, err := p.cfg.Stream.GetMsg(ctx, r.seq)
		if err != nil {
			continue // aged out of the stream since
		}
		ev, err := events.Parse(raw.Data)
		if err != nil {
			continue
		}
		var d events.MessageData
		if ev.DecodeData(&d) != nil {
			continue
		}
		if recalled[d.Message.MsgKey] {
			d.Message.Status = events.StatusRecalled
		}
		msgs = append(msgs, d)
	}
	return msgs, true, more, nil
}

// oldestSeqno is the Bilibili seqno of the oldest message of key in the
// stream, or 0.
func (p *Projection) oldestSeqno(ctx context.Context, key events.ConversationKey) uint64 {
	h, err := p.historyOf(ctx, key)
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
