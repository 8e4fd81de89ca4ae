package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

func newStore(t *testing.T) (*store.Store, *redis.Client) {
	t.Helper()
	srv := redisproc.StartForTest(t)
	st, err := store.Open(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, st.Client().(*redis.Client)
}

func mkNode(t *testing.T, st *store.Store, name, state string) *api.Node {
	t.Helper()
	n := &api.Node{UUID: uuid.NewString(), Name: name, Driver: "fake-hardware", ProvisionState: state, CreatedAt: time.Now().UTC()}
	if err := st.CreateNode(context.Background(), n, nil); err != nil {
		t.Fatal(err)
	}
	return n
}

// Concurrent read-modify-write cycles must not lose updates: each of
// many writers increments a counter once.
func TestUpdateNodeLosesNothing(t *testing.T) {
	st, _ := newStore(t)
	n := mkNode(t, st, "", "enroll")
	const writers = 40
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.UpdateNode(context.Background(), n.UUID, "", func(n *api.Node, _ *store.Effects) error {
				if n.Extra == nil {
					n.Extra = map[string]any{}
				}
				c, _ := n.Extra["count"].(float64)
				n.Extra["count"] = c + 1
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, err := st.GetNode(context.Background(), n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Extra["count"] != float64(writers) {
		t.Errorf("count = %v, want %d", got.Extra["count"], writers)
	}
}

func TestIndexesFollowChanges(t *testing.T) {
	st, rdb := newStore(t)
	ctx := context.Background()
	n := mkNode(t, st, "old-name", "enroll")
	if _, err := st.UpdateNode(ctx, n.UUID, "", func(n *api.Node, _ *store.Effects) error {
		n.Name, n.ProvisionState = "new-name", "manageable"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetNode(ctx, "old-name"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old name still resolves: %v", err)
	}
	if got, _, err := st.GetNode(ctx, "new-name"); err != nil || got.UUID != n.UUID {
		t.Errorf("new name: %v %v", got, err)
	}
	counts, _ := st.CountByState(ctx, []string{"enroll", "manageable"})
	if counts["enroll"] != 0 || counts["manageable"] != 1 {
		t.Errorf("counts %v", counts)
	}
	// A second node may not take the name.
	other := mkNode(t, st, "", "enroll")
	_, err := st.UpdateNode(ctx, other.UUID, "", func(n *api.Node, _ *store.Effects) error { n.Name = "new-name"; return nil })
	var dup *store.ErrDuplicate
	if !errors.As(err, &dup) {
		t.Errorf("duplicate rename: %v", err)
	}

	// Deleting a node takes its ports, MACs and history with it.
	p := &api.Port{UUID: uuid.NewString(), Address: "52:54:00:00:00:aa", NodeUUID: n.UUID, CreatedAt: time.Now()}
	if err := st.CreatePort(ctx, p); err != nil {
		t.Fatal(err)
	}
	cur, _, _ := st.GetNode(ctx, n.UUID)
	if err := st.DeleteNode(ctx, cur, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PortByMAC(ctx, p.Address); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("port survived its node: %v", err)
	}
	keys, _ := rdb.Keys(ctx, "ingot:*"+n.UUID+"*").Result()
	if len(keys) != 0 {
		t.Errorf("keys left behind: %v", keys)
	}
	// And the MAC is free again.
	p2 := &api.Port{UUID: uuid.NewString(), Address: p.Address, NodeUUID: other.UUID, CreatedAt: time.Now()}
	if err := st.CreatePort(ctx, p2); err != nil {
		t.Errorf("reuse MAC: %v", err)
	}
}

func TestLock(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	n := mkNode(t, st, "", "enroll")
	a, err := st.Lock(ctx, n.UUID, store.NewOwner("host-a"), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Lock(ctx, n.UUID, store.NewOwner("host-b"), time.Second)
	var locked *store.ErrLocked
	if !errors.As(err, &locked) || locked.Holder != "host-a" {
		t.Fatalf("second lock: %v", err)
	}
	// Writes without the lock are refused; with it they pass.
	if _, err := st.UpdateNode(ctx, n.UUID, "", func(*api.Node, *store.Effects) error { return nil }); !errors.As(err, &locked) {
		t.Errorf("unlocked write: %v", err)
	}
	if _, err := st.UpdateNode(ctx, n.UUID, a.Owner(), func(*api.Node, *store.Effects) error { return nil }); err != nil {
		t.Errorf("holder's write: %v", err)
	}
	// A holder that dies loses the lock when it expires.
	time.Sleep(300 * time.Millisecond)
	if err := a.Renew(ctx); err == nil {
		t.Error("renewed an expired lock")
	}
	b, err := st.Lock(ctx, n.UUID, store.NewOwner("host-b"), time.Second)
	if err != nil {
		t.Fatalf("lock after expiry: %v", err)
	}
	// The old holder's release must not free the new holder's lock.
	a.Release(ctx)
	if _, err := st.Lock(ctx, n.UUID, store.NewOwner("host-c"), time.Second); !errors.As(err, &locked) {
		t.Errorf("stale release freed the lock: %v", err)
	}
	b.Release(ctx)
}

// The decode cache never serves a stale node: not after an update, and not
// after the node is deleted and created again under the same UUID.
func TestViewNodeNeverStale(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	n := mkNode(t, st, "first", "enroll")
	if v, _, err := st.ViewNode(ctx, n.UUID); err != nil || v.Name != "first" {
		t.Fatalf("view: %v %v", v, err)
	}
	if _, err := st.UpdateNode(ctx, n.UUID, "", func(n *api.Node, _ *store.Effects) error { n.Name = "second"; return nil }); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := st.ViewNode(ctx, n.UUID); v.Name != "second" {
		t.Errorf("after update: %q", v.Name)
	}
	cur, _, _ := st.GetNode(ctx, n.UUID)
	if err := st.DeleteNode(ctx, cur, ""); err != nil {
		t.Fatal(err)
	}
	again := &api.Node{UUID: n.UUID, Name: "reborn", Driver: "fake-hardware", ProvisionState: "enroll", CreatedAt: time.Now().UTC()}
	if err := st.CreateNode(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := st.ViewNode(ctx, n.UUID); v.Name != "reborn" {
		t.Errorf("after re-create: %q", v.Name)
	}
}
