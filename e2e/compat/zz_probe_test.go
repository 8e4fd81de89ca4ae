package compat

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
)

func TestZZProbe(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	os.WriteFile("/tmp/probe_url", []byte(env.URL), 0o644)
	fmt.Println("URL", env.URL)
	time.Sleep(300 * time.Second)
}
