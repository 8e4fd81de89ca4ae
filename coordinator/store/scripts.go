package store

import "github.com/redis/go-redis/v9"

// Each script is one atomic step. Nodes are hashes with fields doc (the JSON
// record), v (a write counter for compare-and-set), name and state (copies
// the scripts keep indexes with, so they never decode JSON) and seq (the
// creation order, which lists sort by, as Ironic sorts by its id).

// Versions come from one counter (KEYS seq) rather than counting per
// node, so a node deleted and created again with the same UUID never
// repeats a version a reader may have cached.
//
// createNode: KEYS node, names, nodes, seq, state zset, history.
// ARGV uuid, doc, name, state, history entry, history max length.
var createNode = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('DUP node ' .. ARGV[1]) end
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  return redis.error_reply('DUP name ' .. ARGV[3])
end
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'v', seq, 'name', ARGV[3], 'state', ARGV[4], 'seq', seq)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[1]) end
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('ZADD', KEYS[5], seq, ARGV[1])
if ARGV[5] ~= '' then redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[5]) end
return seq
`)

// putNode is the compare-and-set every node change goes through.
// KEYS node, names, lock, old state zset, new state zset, history, jobs, seq,
// agent session.
// ARGV uuid, expected v, doc, name, state, lock owner ('*': no lock check),
// history entry, job, history max length, '1' to end the agent session (the
// node left the states that run the agent, so its token dies with it).
var putNode = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'name', 'seq')
if not cur[1] then return redis.error_reply('NOTFOUND') end
if cur[1] ~= ARGV[2] then return redis.error_reply('CONFLICT') end
if ARGV[6] ~= '*' then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= ARGV[6] then return redis.error_reply('LOCKED ' .. holder) end
end
local oldname = cur[2] or ''
if ARGV[4] ~= oldname then
  if ARGV[4] ~= '' then
    local other = redis.call('HGET', KEYS[2], ARGV[4])
    if other and other ~= ARGV[1] then return redis.error_reply('DUP name ' .. ARGV[4]) end
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
  end
  if oldname ~= '' then redis.call('HDEL', KEYS[2], oldname) end
end
local v = redis.call('INCR', KEYS[8])
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'v', v, 'name', ARGV[4], 'state', ARGV[5])
if KEYS[4] ~= KEYS[5] then
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], cur[3], ARGV[1])
end
if ARGV[7] ~= '' then redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[9], '*', 'e', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('XADD', KEYS[7], '*', 'node', ARGV[1], 'job', ARGV[8]) end
if ARGV[10] == '1' then redis.call('DEL', KEYS[9]) end
return v
`)

// deleteNode removes a node with its indexes, history, ports, agent
// session and inventory.
// KEYS node, names, nodes, lock, state zset, history, node ports, macs, ports,
// agent session, inventory.
// ARGV uuid, expected v, lock owner, port key prefix.
var deleteNode = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'name')
if not cur[1] then return redis.error_reply('NOTFOUND') end
if cur[1] ~= ARGV[2] then return redis.error_reply('CONFLICT') end
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[3] then return redis.error_reply('LOCKED ' .. holder) end
if cur[2] and cur[2] ~= '' then redis.call('HDEL', KEYS[2], cur[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[6], KEYS[10], KEYS[11])
for _, p in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local mac = redis.call('HGET', ARGV[4] .. p, 'mac')
  if mac then redis.call('HDEL', KEYS[8], mac) end
  redis.call('DEL', ARGV[4] .. p)
  redis.call('ZREM', KEYS[9], p)
end
redis.call('DEL', KEYS[7])
return 1
`)

// createPort: KEYS port, macs, ports, seq, node ports, node.
// ARGV uuid, doc, mac, node uuid.
var createPort = redis.NewScript(`
if redis.call('EXISTS', KEYS[6]) == 0 then return redis.error_reply('NONODE') end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('DUP port ' .. ARGV[1]) end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return redis.error_reply('DUP mac ' .. ARGV[3]) end
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'v', 1, 'mac', ARGV[3], 'node', ARGV[4], 'seq', seq)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 1
`)

// putPort: KEYS port, macs, old node ports, new node ports, new node.
// ARGV uuid, expected v, doc, mac, node uuid.
var putPort = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'mac', 'node')
if not cur[1] then return redis.error_reply('NOTFOUND') end
if cur[1] ~= ARGV[2] then return redis.error_reply('CONFLICT') end
if ARGV[5] ~= cur[3] and redis.call('EXISTS', KEYS[5]) == 0 then return redis.error_reply('NONODE') end
if ARGV[4] ~= cur[2] then
  local other = redis.call('HGET', KEYS[2], ARGV[4])
  if other and other ~= ARGV[1] then return redis.error_reply('DUP mac ' .. ARGV[4]) end
  redis.call('HDEL', KEYS[2], cur[2])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
end
if ARGV[5] ~= cur[3] then
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[1])
end
local v = tonumber(cur[1]) + 1
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'v', v, 'mac', ARGV[4], 'node', ARGV[5])
return v
`)

// deletePort: KEYS port, macs, ports, node ports. ARGV uuid.
var deletePort = redis.NewScript(`
local mac = redis.call('HGET', KEYS[1], 'mac')
if not mac then return redis.error_reply('NOTFOUND') end
redis.call('HDEL', KEYS[2], mac)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)

// unlock releases a lock only if the caller still holds it; renew extends
// it on the same condition. A lock that expired and was taken by someone
// else is theirs.
var unlock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

var renew = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)
