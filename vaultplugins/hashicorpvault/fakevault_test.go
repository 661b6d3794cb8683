package hashicorpvault_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeVault is a KV v2 and AppRole server that follows Vault's documented
// HTTP API (developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2 and
// /api-docs/auth/approle), listening on 127.0.0.1:
//
//	GET  /v1/{mount}/data/{path}?version=N  {"data":{"data":{...},"metadata":{version,created_time,deletion_time,destroyed,custom_metadata}}}
//	POST /v1/auth/approle/login              {"auth":{client_token,accessor,token_policies,lease_duration,renewable}}
//	PUT  /v1/auth/token/renew-self           {"auth":{...}}
//	GET  /v1/auth/token/lookup-self          {"data":{...}}
//
// Vault treats PUT as POST, and its Go client writes with PUT, so both are
// accepted. Requests carry X-Vault-Token; X-Vault-Namespace is checked when a
// namespace is set. A missing secret or version is 404 {"errors":[]}; a
// deleted or destroyed version is 404 with the version's metadata and null
// data, as Vault answers; a bad or expired token is 403 {"errors":["permission
// denied"]}.
type fakeVault struct {
	srv *httptest.Server

	mu        sync.Mutex
	mount     string
	namespace string
	secrets   map[string]*fakeSecret
	tokens    map[string]bool
	denied    map[string]bool // paths a valid token may not read
	roleID    string
	secretID  string
	lease     int
	renewable bool
	noRenew   bool // renew-self answers 403
	rejectAll bool // every token, even a new one, is refused
	failWith  int  // when set, every request answers this status
	failBody  string
	next      int

	logins, renewals, lookups, reads int
	namespaces                       []string
}

type fakeSecret struct {
	versions []fakeVersion
	custom   map[string]string
}

type fakeVersion struct {
	data      map[string]any
	created   time.Time
	deleted   bool
	destroyed bool
}

func newFakeVault() *fakeVault {
	f := &fakeVault{
		mount:   "secret",
		secrets: map[string]*fakeSecret{},
		tokens:  map[string]bool{},
		denied:  map[string]bool{},
		lease:   3600,
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

func (f *fakeVault) URL() string { return f.srv.URL }
func (f *fakeVault) Close()      { f.srv.Close() }

// put adds a version to path and returns its number.
func (f *fakeVault) put(path string, data map[string]any) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[path]
	if s == nil {
		s = &fakeSecret{}
		f.secrets[path] = s
	}
	s.versions = append(s.versions, fakeVersion{data: data, created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	return len(s.versions)
}

func (f *fakeVault) setCustom(path string, meta map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[path].custom = meta
}

func (f *fakeVault) deleteVersion(path string, v int, destroy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ver := &f.secrets[path].versions[v-1]
	ver.deleted = !destroy
	ver.destroyed = destroy
}

// issue makes a new valid token.
func (f *fakeVault) issue() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issueLocked()
}

func (f *fakeVault) issueLocked() string {
	f.next++
	tok := fmt.Sprintf("hvs.fake-token-%d-b7c1e9", f.next)
	f.tokens[tok] = true
	return tok
}

// expireAll invalidates every token issued so far.
func (f *fakeVault) expireAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

func (f *fakeVault) set(fn func(f *fakeVault)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeVault) counts() (logins, renewals, lookups, reads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins, f.renewals, f.lookups, f.reads
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func denied(w http.ResponseWriter) {
	reply(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
}

// envelope is Vault's response wrapper.
func envelope(data, auth any) map[string]any {
	return map[string]any{
		"request_id": "8a3c5d0e-0000-4000-8000-000000000000", "lease_id": "", "renewable": false,
		"lease_duration": 0, "data": data, "wrap_info": nil, "warnings": nil, "auth": auth,
	}
}

func (f *fakeVault) authBlock(tok string) map[string]any {
	return map[string]any{
		"client_token": tok, "accessor": "acc-" + tok[len(tok)-8:], "policies": []string{"default", "writ"},
		"token_policies": []string{"default", "writ"}, "metadata": map[string]string{"role_name": "writ"},
		"lease_duration": f.lease, "renewable": f.renewable, "entity_id": "", "token_type": "service", "orphan": true,
	}
}

func (f *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.namespaces = append(f.namespaces, r.Header.Get("X-Vault-Namespace"))
	if f.failWith != 0 {
		w.WriteHeader(f.failWith)
		_, _ = w.Write([]byte(f.failBody))
		return
	}
	if f.namespace != "" && r.Header.Get("X-Vault-Namespace") != f.namespace {
		denied(w)
		return
	}
	tok := r.Header.Get("X-Vault-Token")
	valid := f.tokens[tok] && !f.rejectAll
	switch {
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && r.URL.Path == "/v1/auth/approle/login":
		f.logins++
		var body struct {
			RoleID   string `json:"role_id"`
			SecretID string `json:"secret_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.RoleID != f.roleID || body.SecretID != f.secretID || f.roleID == "" {
			reply(w, http.StatusBadRequest, map[string]any{"errors": []string{"invalid role or secret ID"}})
			return
		}
		reply(w, http.StatusOK, envelope(nil, f.authBlock(f.issueLocked())))
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/auth/token/renew-self":
		f.renewals++
		if !valid || f.noRenew {
			denied(w)
			return
		}
		reply(w, http.StatusOK, envelope(nil, f.authBlock(tok)))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/auth/token/lookup-self":
		f.lookups++
		if !valid {
			denied(w)
			return
		}
		reply(w, http.StatusOK, envelope(map[string]any{"accessor": "acc", "policies": []string{"default"}, "ttl": f.lease}, nil))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/"+f.mount+"/data/"):
		f.reads++
		path := strings.TrimPrefix(r.URL.Path, "/v1/"+f.mount+"/data/")
		if !valid || f.denied[path] {
			denied(w)
			return
		}
		s := f.secrets[path]
		if s == nil {
			reply(w, http.StatusNotFound, map[string]any{"errors": []string{}})
			return
		}
		v := len(s.versions)
		if q := r.URL.Query().Get("version"); q != "" && q != "0" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 {
				reply(w, http.StatusBadRequest, map[string]any{"errors": []string{"invalid version"}})
				return
			}
			v = n
		}
		if v > len(s.versions) {
			reply(w, http.StatusNotFound, map[string]any{"errors": []string{}})
			return
		}
		ver := s.versions[v-1]
		var custom any
		if s.custom != nil {
			custom = s.custom
		}
		meta := map[string]any{
			"created_time": ver.created.Format(time.RFC3339Nano), "custom_metadata": custom,
			"deletion_time": "", "destroyed": ver.destroyed, "version": v,
		}
		if ver.deleted || ver.destroyed {
			if ver.deleted {
				meta["deletion_time"] = ver.created.Add(time.Hour).Format(time.RFC3339Nano)
			}
			reply(w, http.StatusNotFound, envelope(map[string]any{"data": nil, "metadata": meta}, nil))
			return
		}
		reply(w, http.StatusOK, envelope(map[string]any{"data": ver.data, "metadata": meta}, nil))
	default:
		reply(w, http.StatusNotFound, map[string]any{"errors": []string{"no handler for route"}})
	}
}
