package bench

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// conv names a conversation.
type conv struct {
	st     int
	talker uint64
}

// receipt is the first arrival of one message at the webhook.
type receipt struct {
	at   time.Time
	conv conv
	id   string
	body []byte // kept only while keepBodies is on
}

// receiver is the webhook endpoint: it answers 204, verifies every
// signature (Standard Webhooks, webhook.Verify) and checks that each
// conversation's msg_keys only increase.
type receiver struct {
	srv     *httptest.Server
	secret  string
	secrets []webhook.Secret

	mu         sync.Mutex
	got        map[uint64]receipt // msg_key → first receipt
	last       map[conv]uint64    // highest msg_key seen per conversation
	requests   int
	dups       int // a msg_key received again (at-least-once: allowed, counted)
	outOfOrder int // a msg_key below one already seen in its conversation
	badSig     int
	bad        int // unreadable bodies, other event types
	problem    string
	keepBodies bool
	changed    chan struct{} // signalled (non-blocking) on every new message
}

func newReceiver() (*receiver, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	secret := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key)
	secrets, err := webhook.ParseSecrets(secret)
	if err != nil {
		return nil, err
	}
	r := &receiver{secret: secret, secrets: secrets, got: map[uint64]receipt{}, last: map[conv]uint64{},
		changed: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r, nil
}

func (r *receiver) Close() { r.srv.Close() }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Conversation struct {
				SessionType int    `json:"session_type"`
				TalkerID    uint64 `json:"talker_id,string"`
			} `json:"conversation"`
			Message struct {
				MsgKey uint64 `json:"msg_key,string"`
			} `json:"message"`
		} `json:"data"`
	}
	sigErr := webhook.Verify(r.secrets, req.Header, body, 0, now)
	jsonErr := json.Unmarshal(body, &ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	switch {
	case sigErr != nil:
		r.badSig++
		r.note("signature: " + sigErr.Error())
	case jsonErr != nil || ev.ID != req.Header.Get("webhook-id") || ev.Data.Message.MsgKey == 0:
		r.bad++
		r.note(fmt.Sprintf("unexpected body (%v): %.200s", jsonErr, body))
	default:
		c := conv{ev.Data.Conversation.SessionType, ev.Data.Conversation.TalkerID}
		key := ev.Data.Message.MsgKey
		if _, seen := r.got[key]; seen {
			r.dups++
			break
		}
		if last := r.last[c]; key < last {
			r.outOfOrder++
			r.note(fmt.Sprintf("conversation %d/%d out of order: msg_key %d after %d", c.st, c.talker, key, last))
		} else {
			r.last[c] = key
		}
		rc := receipt{at: now, conv: c, id: ev.ID}
		if r.keepBodies {
			rc.body = body
		}
		r.got[key] = rc
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) note(p string) {
	if r.problem == "" {
		r.problem = p
	}
}

// missing returns how many of keys have not arrived.
func (r *receiver) missing(keys []uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := r.got[k]; !ok {
			n++
		}
	}
	return n
}

// wait waits until every key arrived, the deadline passes or abort
// fires; it returns how many are missing.
func (r *receiver) wait(keys []uint64, deadline time.Time, abort <-chan struct{}) int {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		n := r.missing(keys)
		if n == 0 || !time.Now().Before(deadline) {
			return n
		}
		select {
		case <-r.changed:
		case <-t.C:
		case <-abort:
			return r.missing(keys)
		}
	}
}

// receipts returns the receipts of keys (missing ones are left out).
func (r *receiver) receipts(keys []uint64) map[uint64]receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[uint64]receipt, len(keys))
	for _, k := range keys {
		if rc, ok := r.got[k]; ok {
			out[k] = rc
		}
	}
	return out
}

// counters is a snapshot of the receiver's problem counters.
type counters struct {
	Requests, Duplicates, OutOfOrder, BadSignatures, BadBodies int
	Problem                                                    string
}

func (r *receiver) counters() counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	return counters{r.requests, r.dups, r.outOfOrder, r.badSig, r.bad, r.problem}
}

func (c counters) minus(o counters) counters {
	c.Requests -= o.Requests
	c.Duplicates -= o.Duplicates
	c.OutOfOrder -= o.OutOfOrder
	c.BadSignatures -= o.BadSignatures
	c.BadBodies -= o.BadBodies
	if c.Problem == o.Problem {
		c.Problem = ""
	}
	return c
}

func (r *receiver) setKeepBodies(on bool) {
	r.mu.Lock()
	r.keepBodies = on
	r.mu.Unlock()
}
