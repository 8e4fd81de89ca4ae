package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// historyMax bounds each node's history stream (approximately, as XADD
// MAXLEN ~ does), so a node that cycles forever cannot fill Redis.
const historyMax = 500

// AnyOwner skips the reservation check: for bookkeeping that is safe while
// an operation runs (the watchdog, power sync of an idle node).
const AnyOwner = "*"

// Effects are what a node change does besides changing the node, in the
// same atomic step: a history entry and a job for the conductor.
type Effects struct {
	Event *Event
	Job   *Job
}

// IsUUID reports whether s is a UUID, which tells a node's UUID from its
// name (Ironic forbids names that look like UUIDs).
func IsUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// CreateNode stores a new node. Its UUID must be set.
func (s *Store) CreateNode(ctx context.Context, n *api.Node, ev *Event) error {
	doc, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode node %s: %w", n.UUID, err)
	}
	entry, err := ev.encode()
	if err != nil {
		return err
	}
	keys := []string{s.nodeKey(n.UUID), s.namesKey(), s.nodesKey(), s.seqKey(), s.stateKey(n.ProvisionState), s.historyKey(n.UUID)}
	v, err := createNode.Run(ctx, s.rdb, keys, n.UUID, doc, n.Name, n.ProvisionState, entry, historyMax).Int64()
	if err := scriptError(err, n.UUID); err != nil {
		return fmt.Errorf("create node %s: %w", n.UUID, err)
	}
	n.Version = v
	return nil
}

// ResolveNode returns the UUID of the node called ident (a UUID or a
// name).
func (s *Store) ResolveNode(ctx context.Context, ident string) (string, error) {
	if IsUUID(ident) {
		return ident, nil
	}
	id, err := s.rdb.HGet(ctx, s.namesKey(), ident).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolve node %s: %w", ident, err)
	}
	return id, nil
}

// GetNode returns the node called ident and the holder of its lock ("" when
// unlocked). The node is the caller's to change.
func (s *Store) GetNode(ctx context.Context, ident string) (*api.Node, string, error) {
	return s.getNode(ctx, ident, false)
}

// ViewNode is GetNode for callers that only read the node: it may return a
// node shared with other readers, which must not be changed.
func (s *Store) ViewNode(ctx context.Context, ident string) (*api.Node, string, error) {
	return s.getNode(ctx, ident, true)
}

func (s *Store) getNode(ctx context.Context, ident string, shared bool) (*api.Node, string, error) {
	id, err := s.ResolveNode(ctx, ident)
	if err != nil {
		return nil, "", err
	}
	nodes, holders, err := s.getNodes(ctx, []string{id}, shared)
	if err != nil {
		return nil, "", err
	}
	if nodes[0] == nil {
		return nil, "", ErrNotFound
	}
	return nodes[0], holders[0], nil
}

// getNodes fetches nodes and their lock holders. A node that vanished is
// nil. With shared, nodes decoded before at the same version come from the
// decode cache: decoding JSON is most of the cost of a detailed list, and
// the version (from one counter bumped by every write) tells exactly when
// a cached node is stale, whichever coordinator wrote. Shared reads first
// fetch only versions and locks, then the documents the cache lacks.
func (s *Store) getNodes(ctx context.Context, ids []string, shared bool) ([]*api.Node, []string, error) {
	fields := []string{"v", "doc"}
	if shared {
		fields = fields[:1]
	}
	pipe := s.rdb.Pipeline()
	heads := make([]*redis.SliceCmd, len(ids))
	locks := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		heads[i] = pipe.HMGet(ctx, s.nodeKey(id), fields...)
		locks[i] = pipe.Get(ctx, s.lockKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read nodes: %w", err)
	}
	nodes := make([]*api.Node, len(ids))
	holders := make([]string, len(ids))
	versions := make([]int64, len(ids))
	docs := make([]string, len(ids))
	var missing []int
	for i, id := range ids {
		vals := heads[i].Val()
		if len(vals) == 0 || vals[0] == nil {
			s.cache.drop(id)
			continue
		}
		ver, _ := vals[0].(string)
		versions[i], _ = strconv.ParseInt(ver, 10, 64)
		holders[i] = holderHost(locks[i].Val())
		if !shared {
			docs[i], _ = vals[1].(string)
			continue
		}
		if nodes[i] = s.cache.get(id, versions[i]); nodes[i] == nil {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(missing))
		for k, i := range missing {
			cmds[k] = pipe.HMGet(ctx, s.nodeKey(ids[i]), "v", "doc")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, fmt.Errorf("read nodes: %w", err)
		}
		for k, i := range missing {
			vals := cmds[k].Val()
			if len(vals) != 2 || vals[0] == nil {
				continue // deleted between the two reads
			}
			ver, _ := vals[0].(string)
			versions[i], _ = strconv.ParseInt(ver, 10, 64)
			docs[i], _ = vals[1].(string)
		}
	}
	for i, id := range ids {
		if nodes[i] != nil || docs[i] == "" {
			continue
		}
		n := new(api.Node)
		if err := json.Unmarshal([]byte(docs[i]), n); err != nil {
			return nil, nil, fmt.Errorf("decode node %s: %w", id, err)
		}
		n.Version = versions[i]
		if shared {
			s.cache.put(id, n)
		}
		nodes[i] = n
	}
	return nodes, holders, nil
}

// UpdateNode changes node ident with mutate in one compare-and-set, and
// retries if the node changed meanwhile, so mutate must be a pure function
// of the node it is given. owner is the caller's lock token ("" if it holds
// no lock, AnyOwner to skip the check): a node locked by someone else is
// refused with *ErrLocked. mutate may fill fx to record history or enqueue
// a job atomically with the change.
func (s *Store) UpdateNode(ctx context.Context, ident, owner string, mutate func(n *api.Node, fx *Effects) error) (*api.Node, error) {
	id, err := s.ResolveNode(ctx, ident)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		nodes, _, err := s.getNodes(ctx, []string{id}, false)
		if err != nil {
			return nil, err
		}
		n := nodes[0]
		if n == nil {
			return nil, ErrNotFound
		}
		oldState := n.ProvisionState
		var fx Effects
		if err := mutate(n, &fx); err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		n.UpdatedAt = &now
		v, err := s.putNode(ctx, n, oldState, owner, &fx)
		if errors.Is(err, ErrConflict) && attempt < 50 {
			// Back off a little, with jitter, so racing writers spread out.
			time.Sleep(time.Duration(rand.IntN(1+attempt)) * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, err
		}
		n.Version = v
		return n, nil
	}
}

func (s *Store) putNode(ctx context.Context, n *api.Node, oldState, owner string, fx *Effects) (int64, error) {
	doc, err := json.Marshal(n)
	if err != nil {
		return 0, fmt.Errorf("encode node %s: %w", n.UUID, err)
	}
	entry, err := fx.Event.encode()
	if err != nil {
		return 0, err
	}
	job, err := fx.Job.encode()
	if err != nil {
		return 0, err
	}
	if owner == "" {
		// Nobody holds a lock with an empty token, so any held lock
		// refuses the write.
		owner = "\x00"
	}
	keys := []string{s.nodeKey(n.UUID), s.namesKey(), s.lockKey(n.UUID), s.stateKey(oldState), s.stateKey(n.ProvisionState),
		s.historyKey(n.UUID), s.jobsKey(), s.seqKey(), s.agentKey(n.UUID)}
	endAgent := "0"
	if !sm.State(n.ProvisionState).BootsAgent() {
		endAgent = "1"
	}
	v, err := putNode.Run(ctx, s.rdb, keys, n.UUID, n.Version, doc, n.Name, n.ProvisionState, owner, entry, job, historyMax, endAgent).Int64()
	return v, scriptError(err, n.UUID)
}

// DeleteNode removes a node, its ports and history. owner is as for
// UpdateNode; expected is the version the caller checked the node at.
func (s *Store) DeleteNode(ctx context.Context, n *api.Node, owner string) error {
	if owner == "" {
		owner = "\x00"
	}
	keys := []string{s.nodeKey(n.UUID), s.namesKey(), s.nodesKey(), s.lockKey(n.UUID), s.stateKey(n.ProvisionState),
		s.historyKey(n.UUID), s.nodePortsKey(n.UUID), s.macsKey(), s.portsKey(), s.agentKey(n.UUID), s.inventoryKey(n.UUID)}
	err := deleteNode.Run(ctx, s.rdb, keys, n.UUID, n.Version, owner, s.portKey("")).Err()
	if err := scriptError(err, n.UUID); err != nil {
		return fmt.Errorf("delete node %s: %w", n.UUID, err)
	}
	return nil
}

// ListOptions select and order nodes.
type ListOptions struct {
	State   string               // only nodes in this provision state
	Filter  func(*api.Node) bool // nil: all
	Marker  string               // UUID of the last node of the previous page
	Limit   int                  // 0: no limit
	SortKey func(*api.Node) any  // nil: creation order
	Desc    bool
}

// listBatch is how many nodes one pipeline reads while scanning.
const listBatch = 500

// ListNodes returns nodes and their lock holders. The nodes may be shared
// with other readers (see ViewNode) and must not be changed.
func (s *Store) ListNodes(ctx context.Context, o ListOptions) ([]*api.Node, []string, error) {
	src := s.nodesKey()
	if o.State != "" {
		src = s.stateKey(o.State)
	}
	if o.SortKey != nil {
		return s.listSorted(ctx, src, o)
	}
	// Creation order: walk the index by score from the marker on, a batch
	// at a time, until the page is full.
	bound := "-inf"
	if o.Desc {
		bound = "+inf"
	}
	if o.Marker != "" {
		seq, err := s.rdb.HGet(ctx, s.nodeKey(o.Marker), "seq").Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil, ErrMarkerNotFound
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read marker: %w", err)
		}
		bound = "(" + seq
	}
	var nodes []*api.Node
	var holders []string
	for {
		var ids []string
		var err error
		if o.Desc {
			ids, err = s.rdb.ZRevRangeByScore(ctx, src, &redis.ZRangeBy{Max: bound, Min: "-inf", Count: listBatch}).Result()
		} else {
			ids, err = s.rdb.ZRangeByScore(ctx, src, &redis.ZRangeBy{Min: bound, Max: "+inf", Count: listBatch}).Result()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list nodes: %w", err)
		}
		if len(ids) == 0 {
			return nodes, holders, nil
		}
		batch, hs, err := s.getNodes(ctx, ids, true)
		if err != nil {
			return nil, nil, err
		}
		var last *api.Node
		for i, n := range batch {
			if n == nil {
				continue
			}
			last = n
			if o.Filter != nil && !o.Filter(n) {
				continue
			}
			nodes = append(nodes, n)
			holders = append(holders, hs[i])
			if o.Limit > 0 && len(nodes) == o.Limit {
				return nodes, holders, nil
			}
		}
		if len(ids) < listBatch || last == nil {
			return nodes, holders, nil
		}
		seq, err := s.rdb.ZScore(ctx, src, ids[len(ids)-1]).Result()
		if err != nil {
			// The last node vanished while we read; its neighbour's
			// position is as good a place to go on from.
			return nodes, holders, nil
		}
		bound = "(" + strconv.FormatFloat(seq, 'f', 0, 64)
	}
}

// ErrMarkerNotFound is returned for a pagination marker that names no node.
var ErrMarkerNotFound = errors.New("marker not found")

// listSorted reads every candidate and sorts in memory: sorting by an
// arbitrary field has no index.
func (s *Store) listSorted(ctx context.Context, src string, o ListOptions) ([]*api.Node, []string, error) {
	ids, err := s.rdb.ZRange(ctx, src, 0, -1).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	type row struct {
		n *api.Node
		h string
	}
	var rows []row
	for start := 0; start < len(ids); start += listBatch {
		batch, hs, err := s.getNodes(ctx, ids[start:min(start+listBatch, len(ids))], true)
		if err != nil {
			return nil, nil, err
		}
		for i, n := range batch {
			if n != nil && (o.Filter == nil || o.Filter(n)) {
				rows = append(rows, row{n, hs[i]})
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		c := compareAny(o.SortKey(a.n), o.SortKey(b.n))
		if c == 0 {
			c = cmp.Compare(a.n.UUID, b.n.UUID)
		}
		if o.Desc {
			return -c
		}
		return c
	})
	if o.Marker != "" {
		i := slices.IndexFunc(rows, func(r row) bool { return r.n.UUID == o.Marker })
		if i < 0 {
			return nil, nil, ErrMarkerNotFound
		}
		rows = rows[i+1:]
	}
	if o.Limit > 0 && len(rows) > o.Limit {
		rows = rows[:o.Limit]
	}
	nodes := make([]*api.Node, len(rows))
	holders := make([]string, len(rows))
	for i, r := range rows {
		nodes[i], holders[i] = r.n, r.h
	}
	return nodes, holders, nil
}

// compareAny orders the values sort keys return: nil first, then by type.
func compareAny(a, b any) int {
	switch x := a.(type) {
	case nil:
		if b == nil {
			return 0
		}
		return -1
	case string:
		if y, ok := b.(string); ok {
			return cmp.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmp.Compare(boolInt(x), boolInt(y))
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	}
	if b == nil {
		return 1
	}
	return cmp.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CountByState returns how many nodes are in each provision state.
func (s *Store) CountByState(ctx context.Context, states []string) (map[string]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(states))
	for i, st := range states {
		cmds[i] = pipe.ZCard(ctx, s.stateKey(st))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("count nodes: %w", err)
	}
	out := make(map[string]int64, len(states))
	for i, st := range states {
		out[st] = cmds[i].Val()
	}
	return out, nil
}

// NodesInState returns the UUIDs of nodes in a provision state.
func (s *Store) NodesInState(ctx context.Context, state string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.stateKey(state), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("nodes in %s: %w", state, err)
	}
	return ids, nil
}

// AllNodeIDs returns every node's UUID in creation order.
func (s *Store) AllNodeIDs(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.nodesKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list node ids: %w", err)
	}
	return ids, nil
}
