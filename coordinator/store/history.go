package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one entry of a node's history, as Ironic's node history API
// shows it.
type Event struct {
	UUID      string    `json:"uuid"`
	CreatedAt time.Time `json:"created_at"`
	Severity  string    `json:"severity"`   // INFO or ERROR
	Event     string    `json:"event"`      // what happened, in words
	EventType string    `json:"event_type"` // provisioning, power, ...
	Conductor string    `json:"conductor"`
	User      string    `json:"user,omitempty"`
}

func (e *Event) encode() (string, error) {
	if e == nil {
		return "", nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("encode history event: %w", err)
	}
	return string(b), nil
}

// History returns a node's history, oldest first.
func (s *Store) History(ctx context.Context, node string) ([]Event, error) {
	msgs, err := s.rdb.XRange(ctx, s.historyKey(node), "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", node, err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		var e Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("decode history of %s: %w", node, err)
		}
		out = append(out, e)
	}
	return out, nil
}
