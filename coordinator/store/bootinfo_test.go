package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

func TestNodeByMAC(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	n := mkNode(t, st, "boot-1", "inspect wait")
	for _, p := range []*api.Port{
		{UUID: uuid.NewString(), Address: "52:54:00:00:00:01", NodeUUID: n.UUID, PXEEnabled: true, CreatedAt: time.Now()},
		{UUID: uuid.NewString(), Address: "52:54:00:00:00:02", NodeUUID: n.UUID, PXEEnabled: false, CreatedAt: time.Now()},
	} {
		if err := st.CreatePort(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.NodeByMAC(ctx, "52:54:00:00:00:99"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown MAC: err %v, want ErrNotFound", err)
	}
	got, pxe, err := st.NodeByMAC(ctx, "52:54:00:00:00:02")
	if err != nil || pxe || got.UUID != n.UUID {
		t.Errorf("port without PXE: node %v pxe %v err %v", got, pxe, err)
	}
	got, pxe, err = st.NodeByMAC(ctx, "52:54:00:00:00:01")
	if err != nil || !pxe || got.ProvisionState != "inspect wait" {
		t.Fatalf("PXE port: node %+v pxe %v err %v", got, pxe, err)
	}
	// A change shows at once: the cached node is only used at its version.
	if _, err := st.UpdateNode(ctx, n.UUID, "", func(n *api.Node, _ *store.Effects) error {
		n.ProvisionState = "manageable"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ = st.NodeByMAC(ctx, "52:54:00:00:00:01"); got.ProvisionState != "manageable" {
		t.Errorf("after a change NodeByMAC says %q, want manageable", got.ProvisionState)
	}
}
