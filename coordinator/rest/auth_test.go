package rest_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ingot/ingot/coordinator/auth"
	"github.com/ingot/ingot/coordinator/coordinatortest"
)

// With http_basic, version discovery stays public and everything else
// needs valid credentials, as with Ironic.
func TestHTTPBasic(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("admin:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basic, err := auth.NewBasic(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(env.API.Handler(basic.Middleware))
	defer srv.Close()
	for _, tt := range []struct {
		path, user, pass string
		want             int
	}{
		{"/", "", "", 200},
		{"/v1", "", "", 200},
		{"/v1/nodes", "", "", 401},
		{"/v1/nodes", "admin", "wrong", 401},
		{"/v1/nodes", "admin", "s3cret", 200},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.user != "" {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s as %q: %d, want %d", tt.path, tt.user, resp.StatusCode, tt.want)
		}
	}
}
