package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/store"
)

// MetadataDocuments fetches and validates Client ID Metadata Documents:
// the client metadata published at a client_id that is an https URL.
// *agents.Documents is one.
type MetadataDocuments interface {
	Fetch(ctx context.Context, clientID string) (agents.ClientMetadata, error)
}

// Registry is the agent registry as the client directory reads it;
// *agents.Store is one.
type Registry interface {
	// Client returns a registered agent and its OAuth client.
	Client(ctx context.Context, clientID string) (agents.Agent, agents.Client, error)
	// Register adds an agent (one that authenticated with a client ID
	// metadata document for the first time).
	Register(ctx context.Context, a agents.Agent) error
	// Status is the agent's status from memory; known is false for an
	// agent the registry does not hold.
	Status(ctx context.Context, clientID string) (status string, known bool)
}

// Limits of the client directory.
const (
	// maxJWKSBytes caps a client's jwks_uri document.
	maxJWKSBytes = 256 << 10
	// defaultKeysTTL is how long a fetched jwks_uri set is used.
	defaultKeysTTL = 5 * time.Minute
	// keysRefetchGap is the least time between two fetches of one client's
	// jwks_uri, however many assertions name an unknown key.
	keysRefetchGap = 10 * time.Second
	// maxKeySets bounds the per-client key-set cache.
	maxKeySets = 10000
	// purgeEvery is how often spent client assertions past their expiry
	// are deleted from the database.
	purgeEvery = time.Minute
)

// DirectoryConfig configures a Directory.
type DirectoryConfig struct {
	// Clients are the clients configured by the operator (the CIBA
	// clients). Their grant types default to the CIBA grant.
	Clients []Client
	// Agents holds the agents registered through RFC 7591; nil when
	// registration is off.
	Agents Registry
	// Documents resolves client_ids that are https URLs (Client ID
	// Metadata Documents); nil when such client_ids are not accepted.
	Documents MetadataDocuments
	// DocumentStatus is the status of the agent registered when a
	// metadata-document client first authenticates: agents.Pending (the
	// default) or agents.Active.
	DocumentStatus agents.Status
	// DocumentTenant is the tenant of those agents.
	DocumentTenant string
	// DocumentScopes and DocumentGrants bound what a metadata-document
	// client may use, as registration's allowlists bound registered
	// agents: its document's scope and grant_types are cut to them (a
	// document naming no scope gets DocumentScopes). Nil leaves documents
	// unbounded.
	DocumentScopes, DocumentGrants []string
	// DB holds spent client-assertion ids (spent_assertions), so that every
	// replica refuses a replayed assertion. When nil, replays are refused
	// by this process only.
	DB *store.DB
	// HTTPClient fetches clients' jwks_uri key sets. It should refuse
	// private addresses when registration is open. Default: a client with
	// a 10 second timeout that follows no redirects. Bodies are capped at
	// 256 KiB.
	HTTPClient *http.Client
	// KeysTTL is how long a fetched jwks_uri key set is used before it is
	// fetched again; 5 minutes when zero.
	KeysTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger; nothing is logged when nil.
	Logger *slog.Logger
}

// Directory answers who a client is and how it authenticates: clients the
// operator configured, agents registered through RFC 7591, and clients
// whose client_id is the URL of a Client ID Metadata Document. Every
// endpoint that authenticates clients (token, revocation, introspection,
// backchannel authentication) uses one Directory.
type Directory struct {
	static    map[string]*client
	agents    Registry
	docs      MetadataDocuments
	docStatus agents.Status
	docTenant string
	db        *store.DB
	http      *http.Client
	keysTTL   time.Duration
	now       func() time.Time
	log       *slog.Logger
	replays   *replayCache

	keysMu sync.Mutex
	keys   map[string]*keySet // by client_id

	purgeMu              sync.Mutex
	lastPurge            time.Time
	docScopes, docGrants []string
}

// client is one client as the endpoints see it.
type client struct {
	ID     string
	Tenant string
	// Status is the agent's registry status; "" for a configured client the
	// registry does not hold.
	Status agents.Status
	// Grants are the grant types the client may use at the token endpoint.
	Grants []string
	// Scopes is the registered scope; hasScope is false when none was
	// registered.
	Scopes   []string
	hasScope bool
	// document is true for a client ID metadata document client.
	document bool
	name     string

	secretOK, jwtOK bool
	secretHash      []byte
	secretExpiresAt time.Time
	staticKeys      keyfunc.Keyfunc // a configured or registered inline JWKS
	jwksURI         string

	// CIBA delivery settings (configured clients only).
	delivery, notificationEndpoint string
}

func (c *client) mode() string {
	if c.delivery == "" {
		return DeliveryPoll
	}
	return c.delivery
}

// refusal refuses an agent that is suspended or awaiting review: it may
// authenticate (to revoke its tokens, say) but gets no tokens. RFC 6749
// section 5.2's unauthorized_client fits: the client is authenticated and
// not authorized to use the grant now.
func (c *client) refusal() *oauthError {
	switch c.Status {
	case "", agents.Active:
		return nil
	case agents.Suspended:
		return badRequest(codeUnauthorizedClient, "the agent is suspended")
	case agents.Pending:
		return badRequest(codeUnauthorizedClient, "the agent is awaiting review")
	}
	return badRequest(codeUnauthorizedClient, "the agent is not active")
}

func (c *client) mayUse(grant string) bool { return slices.Contains(c.Grants, grant) }

// keySet is a client's cached jwks_uri key set.
type keySet struct {
	uri     string
	kf      keyfunc.Keyfunc
	fetched time.Time
}

// NewDirectory returns a directory over cfg.
func NewDirectory(cfg DirectoryConfig) (*Directory, error) {
	switch cfg.DocumentStatus {
	case "":
		cfg.DocumentStatus = agents.Pending
	case agents.Pending, agents.Active:
	default:
		return nil, fmt.Errorf("%w: document agents' status %q (want pending or active)", ErrConfig, cfg.DocumentStatus)
	}
	if cfg.KeysTTL < 0 {
		return nil, fmt.Errorf("%w: negative keys TTL", ErrConfig)
	}
	if cfg.KeysTTL == 0 {
		cfg.KeysTTL = defaultKeysTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	d := &Directory{
		static:    make(map[string]*client, len(cfg.Clients)),
		agents:    cfg.Agents,
		docs:      cfg.Documents,
		docStatus: cfg.DocumentStatus,
		docTenant: cfg.DocumentTenant,
		docScopes: cfg.DocumentScopes,
		docGrants: cfg.DocumentGrants,
		db:        cfg.DB,
		http:      cfg.HTTPClient,
		keysTTL:   cfg.KeysTTL,
		now:       cfg.Now,
		log:       cfg.Logger,
		replays:   &replayCache{seen: map[string]time.Time{}},
		keys:      map[string]*keySet{},
	}
	for _, cl := range cfg.Clients {
		if _, dup := d.static[cl.ID]; dup {
			return nil, fmt.Errorf("%w: client %q registered twice", ErrConfig, cl.ID)
		}
		c, err := staticClient(cl)
		if err != nil {
			return nil, err
		}
		d.static[cl.ID] = c
	}
	return d, nil
}

func staticClient(cl Client) (*client, error) {
	if err := cl.validate(); err != nil {
		return nil, err
	}
	c := &client{
		ID:                   cl.ID,
		Tenant:               cl.Tenant,
		Grants:               cl.GrantTypes,
		Scopes:               strings.Fields(cl.Scope),
		hasScope:             cl.Scope != "",
		delivery:             cl.DeliveryMode,
		notificationEndpoint: cl.NotificationEndpoint,
	}
	if len(c.Grants) == 0 {
		c.Grants = []string{GrantTypeCIBA}
	}
	if cl.SecretHash != "" {
		c.secretHash, _ = hex.DecodeString(cl.SecretHash)
		c.secretOK = true
	}
	if len(cl.JWKS) > 0 {
		kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(cl.JWKS))
		if err != nil {
			return nil, fmt.Errorf("%w: client %q JWKS: %w", ErrConfig, cl.ID, err)
		}
		c.staticKeys, c.jwtOK = kf, true
	}
	return c, nil
}

// errUnknownClient is a client_id the directory does not hold.
var errUnknownClient = errors.New("oauth: unknown client")

// lookup finds a client: a configured one, a metadata-document client (an
// https client_id), or a registered agent. It returns errUnknownClient for
// none of these, and another error when a store failed.
func (d *Directory) lookup(ctx context.Context, id string) (*client, error) {
	if id == "" {
		return nil, errUnknownClient
	}
	if c, ok := d.static[id]; ok {
		out := *c
		if d.agents != nil {
			if st, known := d.agents.Status(ctx, id); known {
				out.Status = agents.Status(st)
			}
		}
		return &out, nil
	}
	if d.docs != nil && isDocumentID(id) {
		return d.documentClient(ctx, id)
	}
	if d.agents == nil {
		return nil, errUnknownClient
	}
	a, reg, err := d.agents.Client(ctx, id)
	switch {
	case errors.Is(err, agents.ErrNotFound), errors.Is(err, agents.ErrNoClient):
		return nil, errUnknownClient
	case err != nil:
		return nil, err
	}
	c, err := fromMetadata(id, reg.Metadata)
	if err != nil {
		return nil, err
	}
	c.Tenant, c.Status, c.name = a.Tenant, a.Status, a.Name
	c.secretHash, c.secretExpiresAt = reg.SecretHash, reg.SecretExpiresAt
	if c.secretOK && len(c.secretHash) != sha256.Size {
		c.secretOK = false
	}
	return c, nil
}

// documentClient reads a client ID metadata document client. Its agent
// row, once registered, supplies status and tenant.
func (d *Directory) documentClient(ctx context.Context, id string) (*client, error) {
	meta, err := d.docs.Fetch(ctx, id)
	if err != nil {
		d.log.Info("client metadata document not usable", "client_id", id, "error", err)
		return nil, errUnknownClient
	}
	c, err := fromMetadata(id, meta)
	if err != nil {
		return nil, errUnknownClient
	}
	// A document cannot carry a secret writ issued.
	c.secretOK = false
	c.document = true
	c.name = meta.ClientName
	c.Tenant = d.docTenant
	if d.docGrants != nil {
		c.Grants = slices.DeleteFunc(c.Grants, func(g string) bool { return !slices.Contains(d.docGrants, g) })
	}
	if d.docScopes != nil {
		if !c.hasScope {
			c.Scopes = slices.Clone(d.docScopes)
		}
		c.Scopes = slices.DeleteFunc(c.Scopes, func(s string) bool { return !slices.Contains(d.docScopes, s) })
		c.hasScope = true
	}
	if d.agents != nil {
		if st, known := d.agents.Status(ctx, id); known {
			c.Status = agents.Status(st)
		}
	}
	return c, nil
}

// admit registers the agent of a metadata-document client on its first
// successful authentication, so operators see it and can suspend it, and
// gives c the status it has.
func (d *Directory) admit(ctx context.Context, c *client) error {
	if !c.document || d.agents == nil || c.Status != "" {
		return nil
	}
	err := d.agents.Register(ctx, agents.Agent{ClientID: c.ID, Name: c.name, Tenant: c.Tenant, Status: d.docStatus})
	if err != nil && !errors.Is(err, agents.ErrExists) {
		return err
	}
	if err == nil {
		d.log.Info("agent registered from its client metadata document", "client_id", c.ID, "status", string(d.docStatus))
	}
	if st, known := d.agents.Status(ctx, c.ID); known {
		c.Status = agents.Status(st)
	} else {
		c.Status = d.docStatus
	}
	return nil
}

// fromMetadata reads RFC 7591 client metadata.
func fromMetadata(id string, m agents.ClientMetadata) (*client, error) {
	c := &client{ID: id, Grants: m.GrantTypes, Scopes: strings.Fields(m.Scope), hasScope: m.Scope != "", jwksURI: m.JWKSURI}
	if len(c.Grants) == 0 {
		// RFC 7591 section 2: the default is authorization_code, which the
		// token endpoint does not serve.
		c.Grants = []string{"authorization_code"}
	}
	switch m.TokenEndpointAuthMethod {
	case "", authSecretBasic: // RFC 7591's default
		c.secretOK = true
	case authPrivateKeyJWT:
		c.jwtOK = true
		if len(m.JWKS) > 0 {
			kf, err := keyfunc.NewJWKSetJSON(m.JWKS)
			if err != nil {
				return nil, fmt.Errorf("oauth: client %q jwks: %w", id, err)
			}
			c.staticKeys = kf
		}
	}
	// Any other method ("none", client_secret_post, ...) authenticates
	// nowhere: every endpoint here needs a confidential client.
	return c, nil
}

// isDocumentID reports whether id looks like a Client ID Metadata Document
// URL: https, a host, a path.
func isDocumentID(id string) bool {
	if !strings.HasPrefix(id, "https://") {
		return false
	}
	u, err := url.Parse(id)
	return err == nil && u.Host != "" && u.Path != ""
}

// keysFor returns the key set that verifies c's assertions. refresh asks
// for a jwks_uri set fetched anew (rate limited per client).
func (d *Directory) keysFor(ctx context.Context, c *client, refresh bool) (keyfunc.Keyfunc, error) {
	if c.staticKeys != nil {
		return c.staticKeys, nil
	}
	if c.jwksURI == "" {
		return nil, errors.New("oauth: client has no keys")
	}
	now := d.now()
	d.keysMu.Lock()
	ks := d.keys[c.ID]
	d.keysMu.Unlock()
	if ks != nil && ks.uri == c.jwksURI {
		age := now.Sub(ks.fetched)
		if age < d.keysTTL && (!refresh || age < keysRefetchGap) {
			return ks.kf, nil
		}
	}
	kf, err := d.fetchKeys(ctx, c.jwksURI)
	if err != nil {
		return nil, err
	}
	d.keysMu.Lock()
	if len(d.keys) >= maxKeySets {
		for k := range d.keys {
			delete(d.keys, k)
			break
		}
	}
	d.keys[c.ID] = &keySet{uri: c.jwksURI, kf: kf, fetched: now}
	d.keysMu.Unlock()
	return kf, nil
}

func (d *Directory) fetchKeys(ctx context.Context, uri string) (keyfunc.Keyfunc, error) {
	// Keys fetched in the clear could be swapped on the way.
	if u, err := url.Parse(uri); err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("oauth: jwks_uri must be https")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("oauth: jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauth: fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oauth: fetch jwks_uri: status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("oauth: fetch jwks_uri: %w", err)
	}
	if len(raw) > maxJWKSBytes {
		return nil, fmt.Errorf("oauth: jwks_uri document larger than %d bytes", maxJWKSBytes)
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("oauth: jwks_uri document: %w", err)
	}
	return kf, nil
}

// spend records a client assertion's jti until exp and reports whether it
// was unused: first in this process's memory, then in spent_assertions,
// which every replica shares.
func (d *Directory) spend(ctx context.Context, clientID, jti string, exp time.Time) (bool, error) {
	key := clientID + "\x00" + jti
	now := d.now()
	if !d.replays.remember(key, exp, now) {
		return false, nil
	}
	if d.db == nil {
		return true, nil
	}
	d.purgeSpent(ctx, now)
	res, err := d.db.ExecContext(ctx, `INSERT INTO spent_assertions (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, key, exp.Unix())
	if err != nil {
		return false, fmt.Errorf("oauth: record client assertion: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("oauth: record client assertion: %w", err)
	}
	return n == 1, nil
}

// purgeSpent deletes expired spent assertions, at most once per
// purgeEvery. A failure is logged: the rows only take room.
func (d *Directory) purgeSpent(ctx context.Context, now time.Time) {
	d.purgeMu.Lock()
	due := now.Sub(d.lastPurge) >= purgeEvery
	if due {
		d.lastPurge = now
	}
	d.purgeMu.Unlock()
	if !due {
		return
	}
	if _, err := d.db.ExecContext(ctx, `DELETE FROM spent_assertions WHERE expires_at < ?`, now.Unix()); err != nil {
		d.log.Warn("spent client assertions not purged", "error", err)
	}
}

// authMethods are the token endpoint authentication methods the
// configured clients use (registered clients may use both).
func (d *Directory) authMethods() []string {
	basic, pkjwt := d.agents != nil, d.agents != nil || d.docs != nil
	for _, c := range d.static {
		basic = basic || c.secretOK
		pkjwt = pkjwt || c.jwtOK
	}
	methods := []string{}
	if pkjwt {
		methods = append(methods, authPrivateKeyJWT)
	}
	if basic {
		methods = append(methods, authSecretBasic)
	}
	return methods
}
