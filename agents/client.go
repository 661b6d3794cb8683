package agents

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ClientMetadata is an agent's OAuth client metadata (RFC 7591 section 2,
// with OpenID Connect's application_type). Unset fields are omitted when
// encoded, never written as null, "" or {}; RedirectURIs is always written
// (an empty list when the client has none), as MCP clients expect.
type ClientMetadata struct {
	RedirectURIs            []string        `json:"redirect_uris"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	TOSURI                  string          `json:"tos_uri,omitempty"`
	PolicyURI               string          `json:"policy_uri,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	ApplicationType         string          `json:"application_type,omitempty"`
}

// MarshalJSON writes m with redirect_uris always a list.
func (m ClientMetadata) MarshalJSON() ([]byte, error) {
	type plain ClientMetadata
	if m.RedirectURIs == nil {
		m.RedirectURIs = []string{}
	}
	return json.Marshal(plain(m))
}

// Client is the OAuth side of a registered agent: its metadata and the
// hashes of the secrets writ issued it. Secrets themselves are never
// stored.
type Client struct {
	ClientID string
	Metadata ClientMetadata
	// SecretHash is the SHA-256 of the client_secret; nil when the client
	// authenticates otherwise (private_key_jwt).
	SecretHash []byte
	// SecretExpiresAt is when the client_secret stops working; zero never.
	SecretExpiresAt time.Time
	// RegistrationTokenHash is the SHA-256 of the registration access token
	// (RFC 7592); nil when the client cannot manage its registration.
	RegistrationTokenHash []byte
	IssuedAt, UpdatedAt   time.Time
}

// RegisterClient adds an agent together with its OAuth client in one
// transaction: either both are stored or neither. a.ClientID and
// c.ClientID must agree.
func (s *Store) RegisterClient(ctx context.Context, a Agent, c Client) error {
	if a.ClientID != c.ClientID {
		return fmt.Errorf("%w: agent %q and client %q differ", ErrInvalid, a.ClientID, c.ClientID)
	}
	a, err := s.prepare(a)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(c.Metadata)
	if err != nil {
		return fmt.Errorf("%w: metadata: %v", ErrInvalid, err)
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = a.CreatedAt
	}
	return s.change(ctx, func(tx *sql.Tx) error {
		if err := insertAgent(ctx, tx, a); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO agent_clients
			(client_id, metadata, secret_hash, secret_expires_at, registration_token_hash, issued_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.ClientID, string(meta), nullBytes(c.SecretHash), unixOrZero(c.SecretExpiresAt),
			nullBytes(c.RegistrationTokenHash), c.IssuedAt.Unix(), c.IssuedAt.Unix())
		if err != nil {
			return fmt.Errorf("agents: register client %q: %w", c.ClientID, err)
		}
		return nil
	})
}

// Client returns the agent and its OAuth client. An agent registered
// without a client (by an operator) gives ErrNoClient.
func (s *Store) Client(ctx context.Context, clientID string) (Agent, Client, error) {
	a, err := s.Get(ctx, clientID)
	if err != nil {
		return Agent{}, Client{}, err
	}
	var (
		c                  = Client{ClientID: clientID}
		meta               string
		secretExp          int64
		issued, updated    int64
		secret, regTokenID []byte
	)
	err = s.db.QueryRowContext(ctx, `SELECT metadata, secret_hash, secret_expires_at, registration_token_hash, issued_at, updated_at
		FROM agent_clients WHERE client_id = ?`, clientID).Scan(&meta, &secret, &secretExp, &regTokenID, &issued, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return a, Client{}, fmt.Errorf("%w: %q", ErrNoClient, clientID)
	}
	if err != nil {
		return Agent{}, Client{}, fmt.Errorf("agents: read client %q: %w", clientID, err)
	}
	if err := json.Unmarshal([]byte(meta), &c.Metadata); err != nil {
		return Agent{}, Client{}, fmt.Errorf("agents: client %q metadata: %w", clientID, err)
	}
	c.SecretHash, c.RegistrationTokenHash = secret, regTokenID
	if secretExp != 0 {
		c.SecretExpiresAt = time.Unix(secretExp, 0)
	}
	c.IssuedAt, c.UpdatedAt = time.Unix(issued, 0), time.Unix(updated, 0)
	return a, c, nil
}

// UpdateClient replaces the client's metadata and secret hashes (RFC 7592
// update). The agent's name follows the metadata's client_name. With
// allowed, the agent must have one of those statuses (else ErrTransition),
// checked in the same transaction.
func (s *Store) UpdateClient(ctx context.Context, c Client, allowed ...Status) error {
	meta, err := json.Marshal(c.Metadata)
	if err != nil {
		return fmt.Errorf("%w: metadata: %v", ErrInvalid, err)
	}
	now := s.now()
	return s.change(ctx, func(tx *sql.Tx) error {
		if err := requireStatus(ctx, tx, c.ClientID, allowed); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE agent_clients SET metadata = ?, secret_hash = ?, secret_expires_at = ?,
			registration_token_hash = ?, updated_at = ? WHERE client_id = ?`,
			string(meta), nullBytes(c.SecretHash), unixOrZero(c.SecretExpiresAt), nullBytes(c.RegistrationTokenHash), now.Unix(), c.ClientID)
		if err != nil {
			return fmt.Errorf("agents: update client %q: %w", c.ClientID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %q", ErrNoClient, c.ClientID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET name = ? WHERE client_id = ?`, c.Metadata.ClientName, c.ClientID); err != nil {
			return fmt.Errorf("agents: update client %q: %w", c.ClientID, err)
		}
		return nil
	})
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
