package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig([]byte(`
listen:
  grpc: 127.0.0.1:7000
  http: ""
  api: 127.0.0.1:7002
data_dir: /var/lib/writ
issuer: https://writ.example
trusted_issuers:
  - issuer: https://idp.example
    jwks_file: keys/jwks.json
    audiences: [https://writ.example]
    algorithms: [ES256]
policies: ./policies
tokens:
  profile: txn_token
  max_ttl: 2m
check:
  max_body_bytes: 4096
evidence:
  flush_interval: 5ms
log:
  level: warn
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.GRPC != "127.0.0.1:7000" || cfg.Listen.HTTP != "" || cfg.Tokens.MaxTTL != 2*time.Minute ||
		cfg.Tokens.Profile != "txn_token" || cfg.Tokens.Algorithm != "ES256" || cfg.Check.MaxBodyBytes != 4096 ||
		cfg.Evidence.FlushInterval != 5*time.Millisecond || cfg.TrustedIssuers[0].Audiences[0] != "https://writ.example" {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestEmptyConfigIsTheDefaults(t *testing.T) {
	cfg, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.GRPC != "127.0.0.1:9191" || cfg.Listen.HTTP != "127.0.0.1:9192" || cfg.Listen.API != "127.0.0.1:8080" || cfg.DataDir != "./writ-data" {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "listen:\n  grpc: 127.0.0.1:1\nlisten_addr: x\n", `config: unknown key "listen_addr" (line 3)`},
		{"unknown nested key", "tokens:\n  ttl: 5m\n", `config: unknown key "ttl" (line 2)`},
		{"unknown issuer key", "trusted_issuers:\n  - issuer: https://a\n    jwks: x\n", `config: unknown key "jwks" (line 3)`},
		{"bad duration", "tokens:\n  max_ttl: soon\n", "config: yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `soon` into time.Duration"},
		{"bad address", "listen:\n  grpc: nowhere\n", `config: listen.grpc: "nowhere" is not host:port`},
		{"no api", "listen:\n  api: \"\"\n", "config: listen.api is required (it serves the JWKS that verifies writ tokens)"},
		{"no ext_authz listener", "listen:\n  grpc: \"\"\n  http: \"\"\n", "config: at least one of listen.grpc and listen.http is required"},
		{"half TLS", "listen:\n  tls:\n    cert_file: c.pem\n", "config: listen.tls: cert_file and key_file must be set together"},
		{"bad profile", "tokens:\n  profile: jwt\n", `config: tokens.profile: tokens: unknown token profile`},
		{"ttl too long", "tokens:\n  max_ttl: 48h\n", "config: tokens.max_ttl: 48h0m0s is outside (0, 24h]"},
		{"bad algorithm", "tokens:\n  algorithm: HS256\n", `config: tokens.algorithm: "HS256" is not one of ES256, RS256, EdDSA`},
		{"bad log level", "log:\n  level: loud\n", `config: log.level: "loud" is not one of debug, info, warn, error`},
		{"issuer with a trailing slash", "issuer: https://writ.example/\n", `config: issuer: "https://writ.example/" must not end with /`},
		{"bad unknown-agent rule", "agents:\n  unknown: maybe\n", `config: agents.unknown: "maybe" is not allow or deny`},
		{"agents refresh too slow", "agents:\n  refresh: 5m\n", "config: agents.refresh: 5m0s is outside [0, 1m]"},
		{"issuer with HS256", "trusted_issuers:\n  - issuer: https://a\n    jwks_file: k.json\n    audiences: [x]\n    algorithms: [HS256]\n", `config: trusted_issuers[0].algorithms: "HS256" is not allowed`},
		{"issuer with none", "trusted_issuers:\n  - issuer: https://a\n    jwks_file: k.json\n    audiences: [x]\n    algorithms: [none]\n", `config: trusted_issuers[0].algorithms: "none" is not allowed`},
		{"issuer without audience", "trusted_issuers:\n  - issuer: https://a\n    jwks_file: k.json\n", `config: trusted_issuers[0].audiences:`},
		{"issuer with two key sources", "trusted_issuers:\n  - issuer: https://a\n    jwks_file: k.json\n    jwks_uri: https://a/jwks\n    audiences: [x]\n", `config: trusted_issuers[0].`},
		{"plain http jwks_uri", "trusted_issuers:\n  - issuer: https://a\n    jwks_uri: http://idp.example/jwks\n    audiences: [x]\n", `config: trusted_issuers[0].jwks_uri:`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n got %q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("listen:\n  grpc: 127.0.0.1:1\n"))
	f.Add([]byte("trusted_issuers:\n  - issuer: https://a\n    jwks_file: k\n    audiences: [x]\n"))
	f.Add([]byte("tokens: {max_ttl: 1s}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := parseConfig(raw)
		if err != nil {
			return
		}
		_ = cfg.Validate() // must not panic
	})
}

func TestServeFlagsOverrideTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "writ.yaml")
	if err := os.WriteFile(path, []byte("listen:\n  grpc: 127.0.0.1:1001\n  http: 127.0.0.1:1002\n  api: 127.0.0.1:1003\ndata_dir: /from/file\npolicies: /file/policies\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, dev, err := serveConfig([]string{"--config", path, "--grpc", "127.0.0.1:2001", "--api", "127.0.0.1:2003", "--data-dir", "/from/flag", "--dev"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.GRPC != "127.0.0.1:2001" || cfg.Listen.HTTP != "127.0.0.1:1002" || cfg.Listen.API != "127.0.0.1:2003" ||
		cfg.DataDir != "/from/flag" || cfg.Policies != "/file/policies" || !dev {
		t.Errorf("got %+v dev=%t", cfg, dev)
	}
	if _, _, err := serveConfig([]string{"--grpc", "nowhere"}); err == nil || err.Error() != `config: listen.grpc: "nowhere" is not host:port` {
		t.Errorf("a bad flag value must fail validation: %v", err)
	}
}
