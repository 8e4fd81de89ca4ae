package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/ingot/ingot/pkg/api"
)

// portNode: KEYS macs. ARGV mac, port key prefix, node key prefix.
// Returns false if no port has the MAC, else {pxe_enabled 0|1, node uuid,
// node version or false if the node is gone}.
var portNode = redis.NewScript(`
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
local doc = redis.call('HGET', ARGV[2] .. id, 'doc')
if not doc then return false end
local p = cjson.decode(doc)
local pxe = 0
if p.pxe_enabled then pxe = 1 end
local node = p.node_uuid or ''
return {pxe, node, redis.call('HGET', ARGV[3] .. node, 'v')}
`)

// NodeByMAC answers what the boot service asks of every DHCP and HTTP
// boot request: the node of the port with MAC mac (normalized), and
// whether that port may network-boot, in one round trip while the node's
// decoded document is cached at its current version (two otherwise). It
// returns ErrNotFound if no port has the MAC or its node is gone. The node
// may be shared with other readers and must not be changed.
func (s *Store) NodeByMAC(ctx context.Context, mac string) (n *api.Node, pxeEnabled bool, err error) {
	res, err := portNode.Run(ctx, s.rdb, []string{s.macsKey()}, mac, s.portKey(""), s.nodeKey("")).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, false, ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("node by mac %s: %w", mac, err)
	}
	if len(res) != 3 || res[2] == nil {
		return nil, false, ErrNotFound
	}
	pxe, _ := res[0].(int64)
	id, _ := res[1].(string)
	ver, _ := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
	if n = s.cache.get(id, ver); n != nil {
		return n, pxe == 1, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.nodeKey(id), "v", "doc").Result()
	if err != nil {
		return nil, false, fmt.Errorf("node by mac %s: %w", mac, err)
	}
	if len(vals) != 2 || vals[0] == nil || vals[1] == nil {
		return nil, false, ErrNotFound // deleted between the two reads
	}
	n = new(api.Node)
	if err := json.Unmarshal([]byte(vals[1].(string)), n); err != nil {
		return nil, false, fmt.Errorf("decode node %s: %w", id, err)
	}
	n.Version, _ = strconv.ParseInt(vals[0].(string), 10, 64)
	s.cache.put(id, n)
	return n, pxe == 1, nil
}
