package agents_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/writ-dev/writ/agents"
)

func clientHash(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// clientCmp compares times as instants and a nil list as an empty one
// (redirect_uris is always stored as a list).
var clientCmp = cmp.Options{cmp.Comparer(func(x, y time.Time) bool { return x.Equal(y) }), cmpopts.EquateEmpty()}

func TestClientRoundTrip(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, openDB(t), t0)
	meta := agents.ClientMetadata{
		ClientName: "Research Bot", GrantTypes: []string{agents.GrantClientCredentials},
		TokenEndpointAuthMethod: agents.AuthPrivateKeyJWT, JWKS: json.RawMessage(`{"keys":[{"kty":"EC"}]}`),
		Scope: "tools.read", Contacts: []string{"ops@example.com"},
	}
	c := agents.Client{ClientID: "bot", Metadata: meta, RegistrationTokenHash: clientHash("reg"), SecretHash: clientHash("secret"),
		SecretExpiresAt: t0.Add(time.Hour)}
	a := agents.Agent{ClientID: "bot", Name: "Research Bot", Owner: "alice", Tenant: "acme", Status: agents.Pending}
	if err := s.RegisterClient(ctx, a, c); err != nil {
		t.Fatal(err)
	}
	if st, known := s.Status(ctx, "bot"); !known || st != "pending" {
		t.Errorf("status after RegisterClient = %q (known %t), want pending", st, known)
	}
	gotA, gotC, err := s.Client(ctx, "bot")
	if err != nil {
		t.Fatal(err)
	}
	wantA := a
	wantA.CreatedAt = t0
	if gotA != wantA {
		t.Errorf("agent\n got %+v\nwant %+v", gotA, wantA)
	}
	wantC := c
	wantC.IssuedAt, wantC.UpdatedAt = t0, t0
	if diff := cmp.Diff(wantC, gotC, clientCmp); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}

	// UpdateClient replaces metadata and hashes; the agent's name follows.
	upd := gotC
	upd.Metadata = agents.ClientMetadata{ClientName: "Renamed", RedirectURIs: []string{"https://app.example/cb"}}
	upd.SecretHash, upd.SecretExpiresAt = nil, time.Time{}
	upd.RegistrationTokenHash = clientHash("reg2")
	if err := s.UpdateClient(ctx, upd); err != nil {
		t.Fatal(err)
	}
	gotA, gotC, err = s.Client(ctx, "bot")
	if err != nil {
		t.Fatal(err)
	}
	if gotA.Name != "Renamed" {
		t.Errorf("agent name after update = %q", gotA.Name)
	}
	if diff := cmp.Diff(upd, gotC, clientCmp); diff != "" {
		t.Errorf("client after update (-want +got):\n%s", diff)
	}
}

func TestRegisterClientIsAtomic(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, openDB(t), t0)
	if err := s.Register(ctx, agents.Agent{ClientID: "bot", Owner: "alice", Tenant: "acme", Status: agents.Active}); err != nil {
		t.Fatal(err)
	}
	err := s.RegisterClient(ctx, agents.Agent{ClientID: "bot", Owner: "mallory", Tenant: "evil", Status: agents.Active},
		agents.Client{ClientID: "bot", RegistrationTokenHash: clientHash("reg")})
	if !errors.Is(err, agents.ErrExists) {
		t.Fatalf("RegisterClient over an existing agent = %v, want ErrExists", err)
	}
	// Neither the client row nor any change to the agent was kept.
	a, _, err := s.Client(ctx, "bot")
	if !errors.Is(err, agents.ErrNoClient) {
		t.Errorf("Client = %v, want ErrNoClient", err)
	}
	if a.Owner != "alice" || a.Tenant != "acme" {
		t.Errorf("existing agent changed: %+v", a)
	}

	for _, tc := range []struct {
		name string
		a    agents.Agent
		c    agents.Client
	}{
		{"ids differ", agents.Agent{ClientID: "x"}, agents.Client{ClientID: "y"}},
		{"empty id", agents.Agent{}, agents.Client{}},
		{"bad status", agents.Agent{ClientID: "z", Status: "gone"}, agents.Client{ClientID: "z"}},
	} {
		if err := s.RegisterClient(ctx, tc.a, tc.c); !errors.Is(err, agents.ErrInvalid) {
			t.Errorf("%s: RegisterClient = %v, want ErrInvalid", tc.name, err)
		}
	}
	if list, err := s.List(ctx, agents.Filter{}); err != nil || len(list) != 1 {
		t.Errorf("List = %d agents, %v; want only the first", len(list), err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, openDB(t), t0)
	if _, _, err := s.Client(ctx, "nobody"); !errors.Is(err, agents.ErrNotFound) {
		t.Errorf("Client(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.UpdateClient(ctx, agents.Client{ClientID: "nobody"}); !errors.Is(err, agents.ErrNoClient) {
		t.Errorf("UpdateClient(unknown) = %v, want ErrNoClient", err)
	}
	if err := s.Register(ctx, agents.Agent{ClientID: "operator-made"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateClient(ctx, agents.Client{ClientID: "operator-made", Metadata: agents.ClientMetadata{ClientName: "x"}}); !errors.Is(err, agents.ErrNoClient) {
		t.Errorf("UpdateClient(agent without client) = %v, want ErrNoClient", err)
	}
	if a, err := s.Get(ctx, "operator-made"); err != nil || a.Name != "" {
		t.Errorf("failed update renamed the agent: %+v, %v", a, err)
	}
}

func TestDeleteCascadesToClient(t *testing.T) {
	ctx := t.Context()
	db := openDB(t)
	s := openStore(t, db, t0)
	c := agents.Client{ClientID: "bot", RegistrationTokenHash: clientHash("reg")}
	if err := s.RegisterClient(ctx, agents.Agent{ClientID: "bot"}, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM agent_clients WHERE client_id = 'bot'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("client rows after Delete = %d, %v; want 0", n, err)
	}
	if _, _, err := s.Client(ctx, "bot"); !errors.Is(err, agents.ErrNotFound) {
		t.Errorf("Client after Delete = %v, want ErrNotFound", err)
	}
	// The client_id can be registered afresh.
	if err := s.RegisterClient(ctx, agents.Agent{ClientID: "bot"}, c); err != nil {
		t.Errorf("RegisterClient after Delete: %v", err)
	}
}

// A change conditioned on the agent's status checks it in the same
// transaction: an agent's own update or withdrawal cannot slip past a
// suspension made a moment earlier.
func TestChangesConditionedOnStatus(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, openDB(t), t0)
	c := agents.Client{ClientID: "bot", Metadata: agents.ClientMetadata{ClientName: "before"}}
	if err := s.RegisterClient(ctx, agents.Agent{ClientID: "bot"}, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Suspend(ctx, "bot", "user:op", "test"); err != nil {
		t.Fatal(err)
	}
	c.Metadata.ClientName = "after"
	if err := s.UpdateClient(ctx, c, agents.Active); !errors.Is(err, agents.ErrTransition) {
		t.Fatalf("update of a suspended agent: %v, want ErrTransition", err)
	}
	if err := s.Delete(ctx, "bot", agents.Active, agents.Pending); !errors.Is(err, agents.ErrTransition) {
		t.Fatalf("withdrawal of a suspended agent: %v, want ErrTransition", err)
	}
	a, got, err := s.Client(ctx, "bot")
	if err != nil || a.Status != agents.Suspended || got.Metadata.ClientName != "before" {
		t.Fatalf("after refused changes: %+v %+v %v", a, got.Metadata, err)
	}
	if err := s.Delete(ctx, "ghost", agents.Active); !errors.Is(err, agents.ErrNotFound) {
		t.Errorf("conditional delete of an unknown agent: %v, want ErrNotFound", err)
	}
	if err := s.Resume(ctx, "bot", "user:op"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateClient(ctx, c, agents.Active); err != nil {
		t.Fatalf("update of the resumed agent: %v", err)
	}
	if err := s.Delete(ctx, "bot", agents.Active, agents.Pending); err != nil {
		t.Fatalf("withdrawal of the resumed agent: %v", err)
	}
}
