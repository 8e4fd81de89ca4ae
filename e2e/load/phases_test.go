package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI answers provision verbs and states for nodes whose provision
// state follows verbs at once, except that verb "active" ends in
// activeEnds; the first PUT for each node is refused as locked.
type fakeAPI struct {
	activeEnds string
	mu         sync.Mutex
	state      map[string]string
	refused    map[string]bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-OpenStack-Ironic-API-Version") != apiVersion {
		http.Error(w, "no version header", http.StatusBadRequest)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/nodes/"), "/")
	node := parts[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && len(parts) == 3:
		if !f.refused[node] {
			f.refused[node] = true
			http.Error(w, "locked", http.StatusConflict)
			return
		}
		var req struct{ Target string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.state[node] = map[string]string{"manage": "manageable", "provide": "available", "active": f.activeEnds}[req.Target]
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && len(parts) == 2:
		json.NewEncoder(w).Encode(nodeStates{ProvisionState: f.state[node], LastError: "boom"})
	default:
		http.NotFound(w, r)
	}
}

func TestRunDeploy(t *testing.T) {
	for _, tc := range []struct {
		activeEnds string
		wantErr    string
	}{
		{activeEnds: "active"},
		{activeEnds: "deploy failed", wantErr: `2 of 2 nodes failed`},
	} {
		t.Run(tc.activeEnds, func(t *testing.T) {
			f := &fakeAPI{activeEnds: tc.activeEnds, state: map[string]string{}, refused: map[string]bool{}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c := newClient(srv.URL, 5*time.Second, 4)
			cfg := &config{timeout: 5 * time.Second, poll: time.Millisecond}
			res, err := runDeploy(t.Context(), c, cfg, []string{"a", "b"})
			if tc.wantErr == "" {
				if err != nil || res.Nodes != 2 || res.TotalSeconds <= 0 {
					t.Fatalf("runDeploy = %+v, %v; want success", res, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("runDeploy error = %v; want %q with the last error", err, tc.wantErr)
			}
		})
	}
}

func TestFailedState(t *testing.T) {
	for _, tc := range []struct {
		st   nodeStates
		want string
		fail bool
	}{
		{nodeStates{ProvisionState: "deploy failed"}, "active", true},
		{nodeStates{ProvisionState: "clean failed"}, "available", true},
		{nodeStates{ProvisionState: "error"}, "active", true},
		{nodeStates{ProvisionState: "deploying", TargetProvisionState: "active"}, "active", false},
		{nodeStates{ProvisionState: "verifying", TargetProvisionState: "manageable"}, "manageable", false},
		{nodeStates{ProvisionState: "enroll", LastError: "bad BMC"}, "manageable", true},
		{nodeStates{ProvisionState: "enroll"}, "manageable", false},
	} {
		if got := failedState(tc.st, tc.want); got != tc.fail {
			t.Errorf("failedState(%+v, %q) = %v, want %v", tc.st, tc.want, got, tc.fail)
		}
	}
}
