package store

import (
	"sync"

	"github.com/ingot/ingot/pkg/api"
)

// cacheMax bounds the decode cache. Past it the cache starts over, which
// costs one decode per node: simpler than LRU, and fleets that big list
// in pages anyway.
const cacheMax = 50000

// nodeCache holds decoded nodes by UUID, each valid only for the version
// it was decoded at. Redis stays the record: a cached node is used only
// when Redis says its version has not moved.
type nodeCache struct {
	mu sync.RWMutex
	m  map[string]*api.Node
}

func (c *nodeCache) get(id string, version int64) *api.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n := c.m[id]; n != nil && n.Version == version {
		return n
	}
	return nil
}

func (c *nodeCache) put(id string, n *api.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheMax {
		c.m = make(map[string]*api.Node, cacheMax/4)
	}
	c.m[id] = n
}

func (c *nodeCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
