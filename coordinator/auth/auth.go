// Package auth implements HTTP authentication for the Ironic-compatible
// REST API, mirroring Ironic's auth_strategy options "noauth" and
// "http_basic".
//
// http_basic follows ironic-lib's auth_basic module: credentials come from
// an Apache htpasswd file that may only contain bcrypt hashes, and failures
// are answered with the same status, header and JSON body Ironic sends so
// that existing clients (python-ironicclient, openstacksdk, metal3) behave
// identically against us.
package auth

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// Strategy names, as Ironic's auth_strategy option spells them.
const (
	NoAuth    = "noauth"
	HTTPBasic = "http_basic"
)

// realm is the value Ironic puts in WWW-Authenticate; clients may display it.
const realm = "Baremetal API"

// unauthorizedBody is Ironic's 401 body byte for byte. error_message is a
// string that itself contains JSON: that is how Ironic's WSME fault handler
// serialises errors, and clients decode it twice, so it must not be
// "improved" into a nested object.
const unauthorizedBody = `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Unauthorized\", \"debuginfo\": null}"}`

// bcryptPrefixes are the only hash formats Ironic accepts.
var bcryptPrefixes = []string{"$2y$", "$2a$", "$2b$"}

// Htpasswd holds users and bcrypt hashes read from an Apache htpasswd file.
// It is immutable after parsing and safe for concurrent use.
type Htpasswd struct {
	users map[string][]byte
	// dummy is a bcrypt hash at the highest cost found in the file. Unknown
	// users are compared against it so they cost as much as known ones.
	dummy []byte
}

// LoadHtpasswd reads and parses the htpasswd file at path.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: open htpasswd: %w", err)
	}
	defer f.Close()
	h, err := ParseHtpasswd(f)
	if err != nil {
		return nil, fmt.Errorf("auth: htpasswd %s: %w", path, err)
	}
	return h, nil
}

// ParseHtpasswd parses htpasswd content of the form "user:hash", one entry
// per line. Blank lines and lines starting with '#' are skipped. Any
// non-bcrypt hash ({SHA}, $apr1$, crypt, plain) is an error naming the line:
// Ironic refuses such files too, and failing loudly at load time is better
// than silently locking a user out at request time.
//
// If a user appears more than once the first entry wins, as in Apache and
// ironic-lib.
func ParseHtpasswd(r io.Reader) (*Htpasswd, error) {
	h := &Htpasswd{users: make(map[string][]byte)}
	maxCost := bcrypt.MinCost
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: malformed entry, want user:hash", lineNo)
		}
		if !hasBcryptPrefix(hash) {
			// The hash itself is deliberately not echoed into the error.
			return nil, fmt.Errorf("line %d: user %q: unsupported password hash, only bcrypt ($2y$, $2a$, $2b$) is accepted", lineNo, user)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("line %d: user %q: invalid bcrypt hash: %w", lineNo, user, err)
		}
		if _, dup := h.users[user]; dup {
			continue
		}
		h.users[user] = []byte(hash)
		maxCost = max(maxCost, cost)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read htpasswd: %w", err)
	}
	dummy, err := dummyHash(maxCost)
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

func hasBcryptPrefix(hash string) bool {
	for _, p := range bcryptPrefixes {
		if strings.HasPrefix(hash, p) {
			return true
		}
	}
	return false
}

// dummyHashes caches one throwaway hash per bcrypt cost for the life of the
// process, so a SIGHUP reload does not pay for generating it again.
var dummyHashes sync.Map // int -> []byte

func dummyHash(cost int) ([]byte, error) {
	if v, ok := dummyHashes.Load(cost); ok {
		return v.([]byte), nil
	}
	// The password is irrelevant: nobody is meant to match it, it only has
	// to make CompareHashAndPassword do a full-cost computation.
	hash, err := bcrypt.GenerateFromPassword([]byte("ingot-dummy-password"), cost)
	if err != nil {
		return nil, fmt.Errorf("generate dummy hash: %w", err)
	}
	v, _ := dummyHashes.LoadOrStore(cost, hash)
	return v.([]byte), nil
}

// Check reports whether user/password are valid. Unknown users are compared
// against a dummy hash of the same cost so that response timing does not
// reveal which users exist.
func (h *Htpasswd) Check(user, password string) bool {
	hash, ok := h.users[user]
	if !ok {
		hash = h.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	return ok && err == nil
}

// Basic is the http_basic strategy: an htpasswd file that can be reloaded
// at runtime (e.g. on SIGHUP) so operators can add or remove users without
// restarting the coordinator.
type Basic struct {
	path string
	// reloadMu serialises Reload so two concurrent reloads cannot publish
	// an older file after a newer one.
	reloadMu sync.Mutex
	// state pairs the credentials with their cache. Swapping both in one
	// atomic store means a reload can never leave a cached success from
	// the previous file visible against the new one, and an in-flight check
	// against the old file only ever populates the old, discarded cache.
	state atomic.Pointer[basicState]
}

type basicState struct {
	htpasswd *Htpasswd
	cache    *credCache
}

// NewBasic loads the htpasswd file at path.
func NewBasic(path string) (*Basic, error) {
	b := &Basic{path: path}
	if err := b.Reload(); err != nil {
		return nil, err
	}
	return b, nil
}

// Reload re-reads the htpasswd file and clears the credential cache. On
// error the previously loaded users stay in effect, so a typo in the file
// does not lock everyone out of a running service.
func (b *Basic) Reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	h, err := LoadHtpasswd(b.path)
	if err != nil {
		return err
	}
	b.state.Store(&basicState{htpasswd: h, cache: newCredCache()})
	return nil
}

// check validates credentials against the current file, consulting the
// cache first because bcrypt deliberately takes tens of milliseconds.
func (b *Basic) check(user, password string) bool {
	s := b.state.Load()
	key := s.cache.key(user, password)
	if s.cache.get(key) {
		return true
	}
	if !s.htpasswd.Check(user, password) {
		// Failures are never cached: that would let a guesser fill the
		// cache and evict legitimate entries.
		return false
	}
	s.cache.put(key)
	return true
}

// Middleware returns a handler that requires valid Basic credentials for
// every request except those for which public reports true (Ironic keeps
// version discovery, GET / and GET /v1, unauthenticated). A nil public
// makes every request require credentials.
//
// Neither the password nor the Authorization header is ever logged.
func (b *Basic) Middleware(next http.Handler, public func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public != nil && public(r) {
			next.ServeHTTP(w, r)
			return
		}
		user, password, ok := r.BasicAuth()
		if !ok || !b.check(user, password) {
			writeUnauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeUnauthorized(w http.ResponseWriter) {
	h := w.Header()
	h.Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, unauthorizedBody)
}
