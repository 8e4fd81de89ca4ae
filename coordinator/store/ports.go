package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ingot/ingot/pkg/api"
)

// ErrNoNode is returned when a port names a node that does not exist.
type ErrNoNode struct{ Node string }

func (e *ErrNoNode) Error() string { return fmt.Sprintf("Node %s could not be found.", e.Node) }

func portError(err error, p *api.Port) error {
	if err != nil && strings.TrimPrefix(err.Error(), "ERR ") == "NONODE" {
		return &ErrNoNode{Node: p.NodeUUID}
	}
	return scriptError(err, p.UUID)
}

// CreatePort stores a new port; its node must exist and its MAC be unused.
func (s *Store) CreatePort(ctx context.Context, p *api.Port) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode port: %w", err)
	}
	keys := []string{s.portKey(p.UUID), s.macsKey(), s.portsKey(), s.seqKey(), s.nodePortsKey(p.NodeUUID), s.nodeKey(p.NodeUUID)}
	if err := portError(createPort.Run(ctx, s.rdb, keys, p.UUID, doc, p.Address, p.NodeUUID).Err(), p); err != nil {
		return fmt.Errorf("create port: %w", err)
	}
	p.Version = 1
	return nil
}

// GetPort returns a port by UUID.
func (s *Store) GetPort(ctx context.Context, id string) (*api.Port, error) {
	ports, err := s.getPorts(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if ports[0] == nil {
		return nil, ErrNotFound
	}
	return ports[0], nil
}

// PortByMAC returns the port with a MAC address (normalized).
func (s *Store) PortByMAC(ctx context.Context, mac string) (*api.Port, error) {
	id, err := s.rdb.HGet(ctx, s.macsKey(), mac).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("port by mac: %w", err)
	}
	return s.GetPort(ctx, id)
}

func (s *Store) getPorts(ctx context.Context, ids []string) ([]*api.Port, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.portKey(id), "doc", "v")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read ports: %w", err)
	}
	out := make([]*api.Port, len(ids))
	for i, c := range cmds {
		vals := c.Val()
		if len(vals) != 2 || vals[0] == nil {
			continue
		}
		doc, _ := vals[0].(string)
		ver, _ := vals[1].(string)
		p := new(api.Port)
		if err := json.Unmarshal([]byte(doc), p); err != nil {
			return nil, fmt.Errorf("decode port %s: %w", ids[i], err)
		}
		p.Version, _ = strconv.ParseInt(ver, 10, 64)
		out[i] = p
	}
	return out, nil
}

// UpdatePort changes a port with mutate in one compare-and-set, retrying
// if it changed meanwhile.
func (s *Store) UpdatePort(ctx context.Context, id string, mutate func(p *api.Port) error) (*api.Port, error) {
	for attempt := 0; ; attempt++ {
		p, err := s.GetPort(ctx, id)
		if err != nil {
			return nil, err
		}
		oldNode := p.NodeUUID
		if err := mutate(p); err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		p.UpdatedAt = &now
		doc, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode port: %w", err)
		}
		keys := []string{s.portKey(id), s.macsKey(), s.nodePortsKey(oldNode), s.nodePortsKey(p.NodeUUID), s.nodeKey(p.NodeUUID)}
		err = portError(putPort.Run(ctx, s.rdb, keys, id, p.Version, doc, p.Address, p.NodeUUID).Err(), p)
		if errors.Is(err, ErrConflict) && attempt < 50 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update port %s: %w", id, err)
		}
		p.Version++
		return p, nil
	}
}

// DeletePort removes a port.
func (s *Store) DeletePort(ctx context.Context, p *api.Port) error {
	keys := []string{s.portKey(p.UUID), s.macsKey(), s.portsKey(), s.nodePortsKey(p.NodeUUID)}
	if err := scriptError(deletePort.Run(ctx, s.rdb, keys, p.UUID).Err(), p.UUID); err != nil {
		return fmt.Errorf("delete port %s: %w", p.UUID, err)
	}
	return nil
}

// PortListOptions select ports.
type PortListOptions struct {
	Node   string // only this node's ports
	Marker string
	Limit  int
	Desc   bool
}

// ListPorts returns ports in creation order.
func (s *Store) ListPorts(ctx context.Context, o PortListOptions) ([]*api.Port, error) {
	var ids []string
	var err error
	if o.Node != "" {
		ids, err = s.rdb.SMembers(ctx, s.nodePortsKey(o.Node)).Result()
	} else {
		ids, err = s.rdb.ZRange(ctx, s.portsKey(), 0, -1).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	ports, err := s.getPorts(ctx, ids)
	if err != nil {
		return nil, err
	}
	ports = slices.DeleteFunc(ports, func(p *api.Port) bool { return p == nil })
	slices.SortStableFunc(ports, func(a, b *api.Port) int {
		c := a.CreatedAt.Compare(b.CreatedAt)
		if c == 0 {
			c = compareAny(a.UUID, b.UUID)
		}
		if o.Desc {
			return -c
		}
		return c
	})
	if o.Marker != "" {
		i := slices.IndexFunc(ports, func(p *api.Port) bool { return p.UUID == o.Marker })
		if i < 0 {
			return nil, ErrMarkerNotFound
		}
		ports = ports[i+1:]
	}
	if o.Limit > 0 && len(ports) > o.Limit {
		ports = ports[:o.Limit]
	}
	return ports, nil
}
