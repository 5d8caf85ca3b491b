package poller

import (
	"context"
	"sync"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
)

// profiles caches user names and avatars. Bounded and expiring: names
// change, and a creator may hear from many thousands of people.
type profiles struct {
	mu      sync.Mutex
	entries map[int64]profileEntry
	ttl     time.Duration
	max     int
	now     func() time.Time
}

type profileEntry struct {
	name, face string
	expires    time.Time
}

func newProfiles(max int, ttl time.Duration, now func() time.Time) *profiles {
	return &profiles{entries: make(map[int64]profileEntry), ttl: ttl, max: max, now: now}
}

// get returns a cached profile.
func (p *profiles) get(uid int64) (name, face string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[uid]
	if !ok || p.now().After(e.expires) {
		return "", "", false
	}
	return e.name, e.face, true
}

// fill looks up every uid not cached, in batches of 50. A failed lookup is
// not fatal: events go out without names rather than not at all.
func (p *profiles) fill(ctx context.Context, api API, uids []int64) error {
	var missing []int64
	seen := map[int64]bool{}
	for _, id := range uids {
		if id == 0 || seen[id] {
			continue
		}
		seen[id] = true
		if _, _, ok := p.get(id); !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cards, err := api.UserCards(ctx, missing)
	p.put(cards)
	return err
}

func (p *profiles) put(cards []bilibili.UserCard) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, c := range cards {
		if len(p.entries) >= p.max {
			p.evict(now)
		}
		p.entries[c.Mid] = profileEntry{name: c.Name, face: c.Face, expires: now.Add(p.ttl)}
	}
}

// evict drops expired entries, or else an arbitrary tenth of the cache.
func (p *profiles) evict(now time.Time) {
	for id, e := range p.entries {
		if now.After(e.expires) {
			delete(p.entries, id)
		}
	}
	n := len(p.entries) / 10
	for id := range p.entries {
		if len(p.entries) < p.max || n <= 0 {
			return
		}
		delete(p.entries, id)
		n--
	}
}
