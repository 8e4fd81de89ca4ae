package flagenv

import (
	"flag"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		listen  string
		timeout time.Duration
		wantErr bool
	}{
		{name: "defaults", listen: "127.0.0.1:6385", timeout: time.Minute},
		{name: "env overrides default", env: map[string]string{"INGOT_LISTEN": ":1", "INGOT_POWER_TIMEOUT": "5s"}, listen: ":1", timeout: 5 * time.Second},
		{name: "flag beats env", args: []string{"--listen", ":2"}, env: map[string]string{"INGOT_LISTEN": ":1"}, listen: ":2", timeout: time.Minute},
		{name: "bad env value", env: map[string]string{"INGOT_POWER_TIMEOUT": "soon"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			listen := fs.String("listen", "127.0.0.1:6385", "")
			timeout := fs.Duration("power-timeout", time.Minute, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := Apply(fs, "INGOT")
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *listen != tt.listen || *timeout != tt.timeout {
				t.Errorf("got %q %v, want %q %v", *listen, *timeout, tt.listen, tt.timeout)
			}
		})
	}
}
