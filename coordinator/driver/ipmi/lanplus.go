package ipmi

import (
	"context"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
)

// dialLanplus logs in to BMCs over IPMI v2.0 LAN (RMCP+) with go-ipmi.
//
// go-ipmi resends an unanswered request every perTry and gives up after
// its retries; the context (the command timeout) is the real bound, so it
// gets as many resends as fit: a lost datagram costs one perTry, not the
// whole command. That is ipmitool's lanplus pacing (1 s, 4 retries).
func dialLanplus(commandTimeout time.Duration) dialer {
	perTry := min(time.Second, max(commandTimeout/4, 50*time.Millisecond))
	resends := int(commandTimeout / perTry)
	return func(ctx context.Context, t target) (session, error) {
		host := t.host
		if strings.Contains(host, ":") {
			// go-ipmi joins host and port with "%s:%d": an IPv6 literal
			// needs its brackets.
			host = "[" + host + "]"
		}
		c, err := client.NewClient(host, t.port, t.username, t.password)
		if err != nil {
			return nil, err
		}
		c.WithInterface(client.InterfaceLanplus).
			WithTimeout(perTry).
			WithRetry(resends).
			WithMaxPrivilegeLevel(t.priv)
		if t.cipher != 0 {
			c.WithCipherSuiteID(t.cipher)
		}
		if err := c.Connect(ctx); err != nil {
			// A failed Connect keeps its UDP socket. Close with a context
			// already ended frees it without sending anything: there is no
			// session to close.
			done, cancel := context.WithCancel(context.Background())
			cancel()
			c.Close(done)
			return nil, err
		}
		return c, nil
	}
}
