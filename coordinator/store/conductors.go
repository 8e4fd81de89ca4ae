package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Conductor is a live coordinator, as GET /v1/conductors shows it.
type Conductor struct {
	Hostname       string    `json:"hostname"`
	ConductorGroup string    `json:"conductor_group"`
	Drivers        []string  `json:"drivers"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Register records (and refreshes) a live coordinator for ttl; a
// coordinator that stops refreshing drops out of the list.
func (s *Store) Register(ctx context.Context, c Conductor, ttl time.Duration) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode conductor: %w", err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.conductorKey(c.Hostname), b, ttl)
	pipe.SAdd(ctx, s.conductorsKey(), c.Hostname)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("register conductor %s: %w", c.Hostname, err)
	}
	return nil
}

// Conductors returns the live coordinators.
func (s *Store) Conductors(ctx context.Context) ([]Conductor, error) {
	hosts, err := s.rdb.SMembers(ctx, s.conductorsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list conductors: %w", err)
	}
	var out []Conductor
	for _, h := range hosts {
		raw, err := s.rdb.Get(ctx, s.conductorKey(h)).Result()
		if err != nil {
			// Expired: it stopped refreshing, so it is gone.
			s.rdb.SRem(ctx, s.conductorsKey(), h)
			continue
		}
		var c Conductor
		if json.Unmarshal([]byte(raw), &c) == nil {
			out = append(out, c)
		}
	}
	return out, nil
}
