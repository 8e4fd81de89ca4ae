package netns

import (
	"net"
	"strings"
	"testing"
)

// A listener opened in Do lives in the namespace: reachable from a
// process in the namespace, not from the host.
func TestDoListensInside(t *testing.T) {
	if why := Available(); why != "" {
		t.Skip(why)
	}
	ns := New(t, "ingot-nstest")
	ns.Bridge("br0", "192.0.2.1/24")
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", "192.0.2.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("inside\n"))
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	out, err := ns.Command("bash", "-c", "exec 3<>/dev/tcp/192.0.2.1/"+port+"; cat <&3").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inside") {
		t.Fatalf("from inside the namespace: %v %q", err, out)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the host reached a listener of the namespace")
	}
}
