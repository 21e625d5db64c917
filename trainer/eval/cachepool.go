package eval

import "github.com/salr-go/salr/model"

// cachePool keeps KV caches between batches so that scoring thousands of
// documents does not allocate a cache per request. Slot i holds one cache
// that grows (is replaced by a larger one) when a request needs more room.
type cachePool struct {
	runner *model.Runner
	limit  int // the model's context: no cache is ever larger
	slots  []*model.Cache
}

// cacheGranule rounds capacities up so that slightly longer prompts reuse a
// cache instead of reallocating it.
const cacheGranule = 64

// get returns the cache of slot i, emptied, with room for at least n tokens.
func (p *cachePool) get(i, n int) *model.Cache {
	for len(p.slots) <= i {
		p.slots = append(p.slots, nil)
	}
	c := p.slots[i]
	if c == nil || c.Cap < n {
		capacity := (n + cacheGranule - 1) / cacheGranule * cacheGranule
		if p.limit > 0 {
			capacity = min(capacity, max(p.limit, n))
		}
		c = p.runner.NewCache(capacity)
		p.slots[i] = c
	}
	c.Len = 0
	return c
}
