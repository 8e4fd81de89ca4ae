package auth

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const wantBody = `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Unauthorized\", \"debuginfo\": null}"}`

// hash returns a MinCost bcrypt hash so the tests stay fast.
func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("GenerateFromPassword: %v", err)
	}
	return string(h)
}

// writeHtpasswd writes user:hash lines for the given user->password pairs.
func writeHtpasswd(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# managed by tests\n\n")
	for u, p := range users {
		fmt.Fprintf(&b, "%s:%s\n", u, hash(t, p))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write htpasswd: %v", err)
	}
}

func newTestBasic(t *testing.T, users map[string]string) (*Basic, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, path, users)
	b, err := NewBasic(path)
	if err != nil {
		t.Fatalf("NewBasic: %v", err)
	}
	return b, path
}

// versionDiscovery mirrors Ironic's unauthenticated endpoints.
func versionDiscovery(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/" || r.URL.Path == "/v1")
}

// okHandler records that it ran and answers 200.
type okHandler struct{ calls int }

func (h *okHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.calls++
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

type creds struct{ user, password string }

func do(h http.Handler, method, path string, c *creds, rawAuth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if c != nil {
		req.SetBasicAuth(c.user, c.password)
	}
	if rawAuth != "" {
		req.Header.Set("Authorization", rawAuth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func assertUnauthorized(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
	if got, want := rec.Header().Get("WWW-Authenticate"), `Basic realm="Baremetal API"`; got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if got := rec.Body.String(); got != wantBody {
		t.Errorf("body = %s\nwant   %s", got, wantBody)
	}
}

func TestMiddleware(t *testing.T) {
	b, _ := newTestBasic(t, map[string]string{"admin": "s3cret", "ops": "hunter2"})

	tests := []struct {
		name     string
		method   string
		path     string
		creds    *creds
		rawAuth  string
		wantCode int
	}{
		{name: "no credentials", method: "GET", path: "/v1/nodes", wantCode: 401},
		{name: "wrong password", method: "GET", path: "/v1/nodes", creds: &creds{"admin", "wrong"}, wantCode: 401},
		{name: "unknown user", method: "GET", path: "/v1/nodes", creds: &creds{"mallory", "s3cret"}, wantCode: 401},
		{name: "empty user", method: "GET", path: "/v1/nodes", creds: &creds{"", "s3cret"}, wantCode: 401},
		{name: "password of other user", method: "GET", path: "/v1/nodes", creds: &creds{"admin", "hunter2"}, wantCode: 401},
		{name: "bearer token", method: "GET", path: "/v1/nodes", rawAuth: "Bearer abc", wantCode: 401},
		{name: "garbage basic", method: "GET", path: "/v1/nodes", rawAuth: "Basic !!!notbase64", wantCode: 401},
		{name: "good", method: "GET", path: "/v1/nodes", creds: &creds{"admin", "s3cret"}, wantCode: 200},
		{name: "good second user", method: "POST", path: "/v1/nodes", creds: &creds{"ops", "hunter2"}, wantCode: 200},
		{name: "good again (cached)", method: "GET", path: "/v1/nodes", creds: &creds{"admin", "s3cret"}, wantCode: 200},
		{name: "public root", method: "GET", path: "/", wantCode: 200},
		{name: "public v1", method: "GET", path: "/v1", wantCode: 200},
		{name: "public with bad creds", method: "GET", path: "/v1", creds: &creds{"admin", "wrong"}, wantCode: 200},
		{name: "non-public method on public path", method: "POST", path: "/v1", wantCode: 401},
		{name: "below public path", method: "GET", path: "/v1/drivers", wantCode: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &okHandler{}
			rec := do(b.Middleware(next, versionDiscovery), tt.method, tt.path, tt.creds, tt.rawAuth)
			if tt.wantCode == http.StatusUnauthorized {
				assertUnauthorized(t, rec)
				if next.calls != 0 {
					t.Errorf("next handler ran %d times on 401", next.calls)
				}
				return
			}
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if next.calls != 1 {
				t.Errorf("next handler ran %d times, want 1", next.calls)
			}
		})
	}
}

func TestMiddlewareNilPublic(t *testing.T) {
	b, _ := newTestBasic(t, map[string]string{"admin": "s3cret"})
	next := &okHandler{}
	assertUnauthorized(t, do(b.Middleware(next, nil), "GET", "/", nil, ""))
	if rec := do(b.Middleware(next, nil), "GET", "/", &creds{"admin", "s3cret"}, ""); rec.Code != 200 {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
}

func TestParseHtpasswd(t *testing.T) {
	good := hash(t, "pw")
	tests := []struct {
		name    string
		content string
		wantErr string // substring; empty means success
		check   map[string]string
	}{
		{
			name:    "comments and blank lines",
			content: "# comment\n\n   \n  # indented comment\nalice:" + good + "\r\n",
			check:   map[string]string{"alice": "pw"},
		},
		{
			name:    "2y prefix accepted",
			content: "bob:" + "$2y$" + strings.TrimPrefix(good, "$2a$") + "\n",
			check:   map[string]string{"bob": "pw"},
		},
		{
			name:    "2b prefix accepted",
			content: "bob:" + "$2b$" + strings.TrimPrefix(good, "$2a$") + "\n",
			check:   map[string]string{"bob": "pw"},
		},
		{
			name:    "first duplicate wins",
			content: "carol:" + good + "\ncarol:" + hash(t, "other") + "\n",
			check:   map[string]string{"carol": "pw"},
		},
		{name: "empty file", content: ""},
		{
			name:    "SHA rejected",
			content: "# c\nalice:" + good + "\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
			wantErr: "line 3",
		},
		{
			name:    "apr1 rejected",
			content: "bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n",
			wantErr: "line 1",
		},
		{name: "plaintext rejected", content: "\nbob:plain\n", wantErr: "line 2"},
		{name: "crypt rejected", content: "bob:rl0uy1Ff1cKEY\n", wantErr: "only bcrypt"},
		{name: "missing colon", content: "bob\n", wantErr: "line 1: malformed"},
		{name: "empty user", content: ":" + good + "\n", wantErr: "line 1: malformed"},
		{name: "truncated bcrypt", content: "bob:$2a$04$short\n", wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHtpasswd(strings.NewReader(tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHtpasswd: %v", err)
			}
			for u, p := range tt.check {
				if !h.Check(u, p) {
					t.Errorf("Check(%q, good) = false", u)
				}
				if h.Check(u, p+"x") {
					t.Errorf("Check(%q, bad) = true", u)
				}
			}
			if h.Check("nobody", "pw") {
				t.Error("Check(unknown user) = true")
			}
		})
	}
}

func TestLoadHtpasswdErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	content := "alice:" + hash(t, "pw") + "\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadHtpasswd(path)
	if err == nil {
		t.Fatal("LoadHtpasswd accepted an $apr1$ entry")
	}
	for _, want := range []string{path, "line 2", `"bob"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "HqJZ") {
		t.Errorf("error %q leaks the hash", err)
	}

	_, err = LoadHtpasswd(filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want wrapped fs.ErrNotExist", err)
	}
	if _, err := NewBasic(filepath.Join(dir, "missing")); err == nil {
		t.Error("NewBasic on a missing file succeeded")
	}
}

func TestReload(t *testing.T) {
	b, path := newTestBasic(t, map[string]string{"old": "oldpw", "keep": "keeppw"})
	h := b.Middleware(&okHandler{}, nil)

	steps := []struct {
		name   string
		reload map[string]string // if non-nil, rewrite the file and Reload first
		creds  creds
		want   int
	}{
		// Warm the cache for "old" so the reload must actually evict it.
		{name: "old valid", creds: creds{"old", "oldpw"}, want: 200},
		{name: "old valid cached", creds: creds{"old", "oldpw"}, want: 200},
		{name: "new not yet valid", creds: creds{"new", "newpw"}, want: 401},
		{
			name:   "new valid after reload",
			reload: map[string]string{"new": "newpw", "keep": "keeppw"},
			creds:  creds{"new", "newpw"}, want: 200,
		},
		{name: "removed user dropped despite cache", creds: creds{"old", "oldpw"}, want: 401},
		{name: "kept user still valid", creds: creds{"keep", "keeppw"}, want: 200},
		{
			name:   "password change takes effect",
			reload: map[string]string{"new": "newpw2", "keep": "keeppw"},
			creds:  creds{"new", "newpw"}, want: 401,
		},
		{name: "changed password valid", creds: creds{"new", "newpw2"}, want: 200},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.reload != nil {
				writeHtpasswd(t, path, s.reload)
				if err := b.Reload(); err != nil {
					t.Fatalf("Reload: %v", err)
				}
			}
			rec := do(h, "GET", "/v1/nodes", &s.creds, "")
			if rec.Code != s.want {
				t.Fatalf("status = %d, want %d", rec.Code, s.want)
			}
		})
	}
}

func TestReloadFailureKeepsPreviousUsers(t *testing.T) {
	b, path := newTestBasic(t, map[string]string{"admin": "s3cret"})
	if err := os.WriteFile(path, []byte("admin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Reload err = %v, want error naming line 1", err)
	}
	rec := do(b.Middleware(&okHandler{}, nil), "GET", "/v1/nodes", &creds{"admin", "s3cret"}, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d after failed reload, want 200", rec.Code)
	}
}

// TestConcurrentReload is meant for -race: requests and reloads interleave.
func TestConcurrentReload(t *testing.T) {
	b, _ := newTestBasic(t, map[string]string{"admin": "s3cret"})
	h := b.Middleware(&nopHandler{}, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if rec := do(h, "GET", "/v1/nodes", &creds{"admin", "s3cret"}, ""); rec.Code != 200 {
					t.Errorf("worker %d: status = %d", i, rec.Code)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if err := b.Reload(); err != nil {
				t.Errorf("Reload: %v", err)
				return
			}
		}
	})
	wg.Wait()
}

type nopHandler struct{}

func (nopHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

func TestCredCache(t *testing.T) {
	c := newCredCache()
	now := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return now }

	k := c.key("admin", "s3cret")
	if k == c.key("admin", "s3cre") || k == c.key("admin:s3cret", "") {
		t.Fatal("distinct credentials share a cache key")
	}
	if k2 := newCredCache().key("admin", "s3cret"); k == k2 {
		t.Error("cache keys are not per-cache keyed")
	}
	if c.get(k) {
		t.Fatal("empty cache hit")
	}
	c.put(k)
	if !c.get(k) {
		t.Fatal("miss right after put")
	}
	now = now.Add(cacheTTL - time.Second)
	if !c.get(k) {
		t.Fatal("miss before expiry")
	}
	now = now.Add(time.Second)
	if c.get(k) {
		t.Fatal("hit at expiry")
	}
	if len(c.entries) != 0 {
		t.Errorf("expired entry not removed, %d left", len(c.entries))
	}

	// The cache stays bounded under many distinct successes.
	for i := range cacheMax * 2 {
		c.put(c.key(fmt.Sprint("user", i), "pw"))
	}
	if n := len(c.entries); n > cacheMax {
		t.Errorf("cache grew to %d entries, max %d", n, cacheMax)
	}
	// The most recent insert always survives eviction.
	if !c.get(c.key(fmt.Sprint("user", cacheMax*2-1), "pw")) {
		t.Error("latest entry evicted")
	}
}

func TestStrategyNames(t *testing.T) {
	if NoAuth != "noauth" || HTTPBasic != "http_basic" {
		t.Fatalf("strategy names = %q, %q", NoAuth, HTTPBasic)
	}
}
