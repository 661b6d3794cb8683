package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

// perRequestClaim marks writ's per-request tokens (they name their
// decision); such a token is meant for the upstream alone and is never
// accepted back as a credential.
const perRequestClaim = "decision_id"

// resourceIDs lists the configured protected resources' identifiers.
func resourceIDs(list []oauth.Resource) []string {
	ids := make([]string, 0, len(list))
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	return ids
}

// ownIssuer is writ's own token endpoint as a trusted issuer of the Check
// path: its tokens verify against the live signing keys, for the
// configured resources, and per-request tokens are refused. ok is false
// when no resource is configured (no endpoint token can name one).
func ownIssuer(cfg Config, keyring *tokens.Keyring) (tokens.IssuerConfig, bool) {
	ids := resourceIDs(cfg.Resources)
	if len(ids) == 0 {
		return tokens.IssuerConfig{}, false
	}
	return tokens.IssuerConfig{
		Issuer:       cfg.Issuer,
		KeySet:       keyring.JWKS,
		Audiences:    ids,
		Algorithms:   []string{cfg.Tokens.Algorithm},
		RefuseClaims: []string{perRequestClaim},
	}, true
}

// authServer is writ's OAuth face: registration, the token endpoint
// (client credentials, token exchange, CIBA), backchannel authentication,
// revocation, introspection and discovery.
type authServer struct {
	registrar   *oauth.Registrar
	tokens      *oauth.TokenEndpoint
	ciba        *oauth.CIBA
	discovery   *oauth.Discovery
	revocations *tokens.Revocations
}

// Routes registers every endpoint on mux.
func (a *authServer) Routes(mux *http.ServeMux) {
	a.registrar.Routes(mux)
	a.tokens.Routes(mux)
	a.ciba.Routes(mux)
	a.discovery.Routes(mux)
}

// Close stops the CIBA notifier.
func (a *authServer) Close() error { return a.ciba.Close() }

// newAuthServer builds the OAuth endpoints on writ's database.
func newAuthServer(ctx context.Context, cfg Config, db *store.DB, registry *agents.Store, st *approvals.Store,
	minter *tokens.Minter, keyring *tokens.Keyring, verifier *tokens.Verifier, evidence *audit.Log, logger *slog.Logger) (*authServer, error) {
	clients, err := cibaClients(cfg)
	if err != nil {
		return nil, err
	}
	regCfg := cfg.Registration
	regCfg.Issuer = cfg.Issuer
	if len(regCfg.Scopes) == 0 {
		regCfg.Scopes = resourceScopes(cfg.Resources)
	}
	// The SSRF-safe client fetches what agents publish about themselves:
	// metadata documents and jwks_uri key sets.
	docs := agents.NewDocuments(agents.DocumentOptions{})
	dirCfg := oauth.DirectoryConfig{
		Clients:        clients,
		Agents:         registry,
		DocumentStatus: newAgentStatus(cfg.Registration),
		DocumentTenant: cfg.Registration.Tenant,
		// A metadata document is bounded as a registration is.
		DocumentScopes: append([]string{}, regCfg.Scopes...),
		DocumentGrants: regCfg.AllowedGrantTypes(),
		DB:             db,
		HTTPClient:     docs.HTTPClient(),
		Logger:         logger,
	}
	if cfg.Registration.MetadataDocuments {
		dirCfg.Documents = docs
	}
	dir, err := oauth.NewDirectory(dirCfg)
	if err != nil {
		return nil, err
	}
	ciba, err := oauth.NewCIBA(oauth.CIBAConfig{Issuer: cfg.Issuer, Directory: dir, Interval: cfg.Approvals.Interval}, st, minter, logger)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*authServer, error) {
		ciba.Close()
		return nil, err
	}
	revocations, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Logger: logger})
	if err != nil {
		return fail(err)
	}
	te, err := oauth.NewTokenEndpoint(oauth.TokenEndpointConfig{
		Issuer: cfg.Issuer, Token: cfg.TokenEndpoint, Directory: dir, Minter: minter, Verifier: verifier,
		Keys: keyring, Revocations: revocations, Resources: resourceIDs(cfg.Resources), CIBA: ciba, Evidence: evidence, Logger: logger,
	})
	if err != nil {
		return fail(err)
	}
	registrar, err := oauth.NewRegistrar(regCfg, registry, evidence, logger)
	if err != nil {
		return fail(err)
	}
	meta := te.Metadata()
	discovery, err := oauth.NewDiscovery(oauth.DiscoveryConfig{
		Issuer:            cfg.Issuer,
		Registration:      regCfg.Enabled(),
		MetadataDocuments: cfg.Registration.MetadataDocuments,
		Revocation:        true,
		Introspection:     true,
		GrantTypes:        metaList(meta, "grant_types_supported"),
		AuthMethods:       metaList(meta, "token_endpoint_auth_methods_supported"),
		AuthSigningAlgs:   metaList(meta, "token_endpoint_auth_signing_alg_values_supported"),
		Extra:             ciba.Metadata(),
		Resources:         cfg.Resources,
	})
	if err != nil {
		return fail(fmt.Errorf("config: issuer, resources: %w", err))
	}
	return &authServer{registrar: registrar, tokens: te, ciba: ciba, discovery: discovery, revocations: revocations}, nil
}

// resourceScopes are the scopes of the configured resources, each once:
// by default, the scopes an agent may register.
func resourceScopes(list []oauth.Resource) []string {
	var out []string
	for _, r := range list {
		for _, s := range r.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func metaList(m map[string]any, key string) []string {
	v, _ := m[key].([]string)
	return v
}

func newAgentStatus(c oauth.RegistrationConfig) agents.Status {
	if c.NewAgents == string(agents.Active) {
		return agents.Active
	}
	return agents.Pending
}

// cibaClients are the clients configured under approvals.ciba.
func cibaClients(cfg Config) ([]oauth.Client, error) {
	var clients []oauth.Client
	for i, c := range cfg.Approvals.CIBA.Clients {
		oc := oauth.Client{ID: c.ClientID, SecretHash: c.SecretSHA256, DeliveryMode: c.DeliveryMode, NotificationEndpoint: c.NotificationEndpoint}
		if c.JWKSFile != "" {
			raw, err := os.ReadFile(c.JWKSFile)
			if err != nil {
				return nil, fmt.Errorf("approvals.ciba.clients[%d].jwks_file: %w", i, err)
			}
			oc.JWKS = raw
		}
		clients = append(clients, oc)
	}
	return clients, nil
}
