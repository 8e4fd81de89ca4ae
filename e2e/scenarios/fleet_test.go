package scenarios

import (
	"testing"
	"time"

	"github.com/ingot/ingot/e2e/lab"
)

// TestThreeNodesAtOnce is scenario 5, in proxy DHCP mode beside a plain
// DHCP server: three machines cleaned and deployed at once, sharing one
// download of their image.
func TestThreeNodesAtOnce(t *testing.T) {
	l := lab.Start(t, lab.Options{Nodes: 3, DHCPMode: "proxy", MemoryMiB: 768})
	raw, _, _ := testImages(t)
	url := l.ServeImage(raw.Path)
	for _, n := range l.Nodes {
		l.Enroll(n, nil)
		l.Provision(n.UUID, "manage", nil)
	}
	for _, n := range l.Nodes {
		l.WaitState(n.UUID, "manageable", time.Minute)
		l.Provision(n.UUID, "provide", nil)
	}
	for _, n := range l.Nodes {
		l.WaitState(n.UUID, "available", 2*bootTimeout)
	}
	var deploys []started
	for _, n := range l.Nodes {
		deploys = append(deploys, startDeploy(t, l, n, url, raw.SHA256))
	}
	for i, n := range l.Nodes {
		finishDeploy(t, l, n, deploys[i])
	}
	if got := l.Downloads(url); got != 1 {
		t.Errorf("three deploys of one image downloaded it %d times, want once", got)
	}
}
