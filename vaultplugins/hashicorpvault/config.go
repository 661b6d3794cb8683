package hashicorpvault

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/writ-dev/writ/vaultplugins"
)

// Defaults for Config.
const (
	DefaultMount        = "secret"
	DefaultAppRoleMount = "approle"
	DefaultField        = "value"
	DefaultFormat       = "Bearer {value}"
	DefaultTimeout      = 10 * time.Second
)

// Config configures a Backend. Token, RoleID and SecretID come from the
// environment or files (see ConfigFromEnv), never from command-line
// arguments.
type Config struct {
	// Address is Vault's URL, such as "https://vault.internal:8200".
	// Required.
	Address string
	// Mount is the KV v2 mount path. Default "secret".
	Mount string
	// Namespace is sent as X-Vault-Namespace on every request (Vault
	// Enterprise / HCP). Default none.
	Namespace string
	// Field is the key of the secret's data that holds the credential value
	// when the reference names none. Default "value".
	Field string
	// Header is the upstream header the credential is set on. Default
	// Authorization. A secret's custom metadata "header" overrides it.
	Header string
	// Format renders the header value, as vaultplugins.Credential.Format:
	// {value} is the selected field, {NAME} the data key NAME. Default
	// "Bearer {value}". A secret's custom metadata "format" overrides it.
	Format string
	// CACert is a PEM file of CA certificates that verify Vault's TLS
	// certificate. Default: the system roots.
	CACert string
	// Timeout bounds each HTTP request to Vault. Default 10s.
	Timeout time.Duration

	// Token authenticates with a fixed Vault token. Set either Token or
	// RoleID and SecretID.
	Token vaultplugins.Secret
	// RoleID and SecretID authenticate with AppRole: the backend logs in on
	// first use, renews the token at two thirds of its lease, and logs in
	// again when renewal fails or Vault answers 403.
	RoleID   string
	SecretID vaultplugins.Secret
	// AppRoleMount is the AppRole auth mount. Default "approle".
	AppRoleMount string

	// Now is the clock token renewal and expires_at are checked on.
	// Default time.Now.
	Now func() time.Time
	// Logger receives debug and warning lines; never a token or value.
	// Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	if c.AppRoleMount == "" {
		c.AppRoleMount = DefaultAppRoleMount
	}
	if c.Field == "" {
		c.Field = DefaultField
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Mount = strings.Trim(c.Mount, "/")
	c.AppRoleMount = strings.Trim(c.AppRoleMount, "/")
	return c
}

// Validate reports whether c, with defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	u, err := url.Parse(c.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: hashicorp vault: address %q is not an http(s) URL", vaultplugins.ErrInvalidConfig, c.Address)
	}
	if err := validPath(c.Mount); err != nil {
		return fmt.Errorf("%w: hashicorp vault: mount %q: %v", vaultplugins.ErrInvalidConfig, c.Mount, err)
	}
	if err := validPath(c.AppRoleMount); err != nil {
		return fmt.Errorf("%w: hashicorp vault: approle mount %q: %v", vaultplugins.ErrInvalidConfig, c.AppRoleMount, err)
	}
	approle := c.RoleID != "" || c.SecretID != ""
	switch {
	case c.Token != "" && approle:
		return fmt.Errorf("%w: hashicorp vault: set a token or an AppRole, not both", vaultplugins.ErrInvalidConfig)
	case c.Token == "" && !approle:
		return fmt.Errorf("%w: hashicorp vault: no token and no AppRole role ID and secret ID", vaultplugins.ErrInvalidConfig)
	case approle && (c.RoleID == "" || c.SecretID == ""):
		return fmt.Errorf("%w: hashicorp vault: AppRole needs both a role ID and a secret ID", vaultplugins.ErrInvalidConfig)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: hashicorp vault: negative timeout", vaultplugins.ErrInvalidConfig)
	}
	if _, err := placeholders(c.Format); err != nil {
		return fmt.Errorf("%w: hashicorp vault: format: %v", vaultplugins.ErrInvalidConfig, err)
	}
	if c.CACert != "" {
		if _, err := os.Stat(c.CACert); err != nil {
			return fmt.Errorf("%w: hashicorp vault: CA certificate file: %v", vaultplugins.ErrInvalidConfig, err)
		}
	}
	return nil
}

// Environment variables ConfigFromEnv reads. A secret may be given directly
// or, with the _FILE suffix, as a file whose contents (trailing whitespace
// trimmed) are the secret; the file wins when both are set.
const (
	EnvAddress      = "WRIT_VAULT_HASHICORP_ADDR"
	EnvMount        = "WRIT_VAULT_HASHICORP_MOUNT"
	EnvNamespace    = "WRIT_VAULT_HASHICORP_NAMESPACE"
	EnvField        = "WRIT_VAULT_HASHICORP_FIELD"
	EnvHeader       = "WRIT_VAULT_HASHICORP_HEADER"
	EnvFormat       = "WRIT_VAULT_HASHICORP_FORMAT"
	EnvCACert       = "WRIT_VAULT_HASHICORP_CA_CERT"
	EnvTimeout      = "WRIT_VAULT_HASHICORP_TIMEOUT"
	EnvToken        = "WRIT_VAULT_HASHICORP_TOKEN"
	EnvRoleID       = "WRIT_VAULT_HASHICORP_ROLE_ID"
	EnvSecretID     = "WRIT_VAULT_HASHICORP_SECRET_ID"
	EnvAppRoleMount = "WRIT_VAULT_HASHICORP_APPROLE_MOUNT"
)

// ConfigFromEnv builds a Config from the WRIT_VAULT_HASHICORP_* variables
// getenv returns (os.Getenv in a plugin binary) and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Address:      getenv(EnvAddress),
		Mount:        getenv(EnvMount),
		Namespace:    getenv(EnvNamespace),
		Field:        getenv(EnvField),
		Header:       getenv(EnvHeader),
		Format:       getenv(EnvFormat),
		CACert:       getenv(EnvCACert),
		AppRoleMount: getenv(EnvAppRoleMount),
	}
	if v := getenv(EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("%w: hashicorp vault: %s: %v", vaultplugins.ErrInvalidConfig, EnvTimeout, err)
		}
		c.Timeout = d
	}
	token, err := secretFromEnv(getenv, EnvToken)
	if err != nil {
		return Config{}, err
	}
	roleID, err := secretFromEnv(getenv, EnvRoleID)
	if err != nil {
		return Config{}, err
	}
	secretID, err := secretFromEnv(getenv, EnvSecretID)
	if err != nil {
		return Config{}, err
	}
	c.Token, c.RoleID, c.SecretID = token, roleID.Reveal(), secretID
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// secretFromEnv reads name, or the file name_FILE points at.
func secretFromEnv(getenv func(string) string, name string) (vaultplugins.Secret, error) {
	if path := getenv(name + "_FILE"); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			// The path is configuration, not a secret; the error names it.
			return "", fmt.Errorf("%w: hashicorp vault: %s_FILE: %v", vaultplugins.ErrInvalidConfig, name, err)
		}
		v := strings.TrimRight(string(raw), " \t\r\n")
		if v == "" {
			return "", fmt.Errorf("%w: hashicorp vault: %s_FILE is empty", vaultplugins.ErrInvalidConfig, name)
		}
		return vaultplugins.Secret(v), nil
	}
	return vaultplugins.Secret(getenv(name)), nil
}

// placeholders returns the names in a credential format's {NAME}
// placeholders.
func placeholders(format string) ([]string, error) {
	var names []string
	for rest := format; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			return names, nil
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unterminated placeholder")
		}
		names = append(names, rest[open+1:open+end])
		rest = rest[open+end+1:]
	}
}
