package agents_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/agents"
)

// metadataJWK returns one EC P-256 JWK as JSON: the public half, or with
// the private member d too.
func metadataJWK(t *testing.T, private bool) json.RawMessage {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var k any = &key.PublicKey
	if private {
		k = key
	}
	jwk, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{
		Marshal:  jwkset.JWKMarshalOptions{Private: private},
		Metadata: jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jwk.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rsaJWKS is a JWK Set of one RSA public key of the given size.
func rsaJWKS(t *testing.T, bits int) json.RawMessage {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jwk.Marshal())
	return jwksOf(b)
}

func jwksOf(keys ...json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func TestMetadataValidate(t *testing.T) {
	pub := jwksOf(metadataJWK(t, false))
	priv := jwksOf(metadataJWK(t, true))
	const (
		ok       = ""
		redirect = agents.CodeInvalidRedirectURI
		metadata = agents.CodeInvalidClientMetadata
	)
	pkjwt := func(m agents.ClientMetadata) agents.ClientMetadata {
		m.TokenEndpointAuthMethod = agents.AuthPrivateKeyJWT
		return m
	}
	long := strings.Repeat("a", agents.MaxTextLength+1)
	cases := []struct {
		name string
		m    agents.ClientMetadata
		code string
		// in must appear in the description.
		in string
	}{
		{"empty metadata takes the defaults", agents.ClientMetadata{}, ok, ""},
		{"https redirect", agents.ClientMetadata{RedirectURIs: []string{"https://app.example/cb?x=1"}}, ok, ""},
		{"loopback http 127.0.0.1", agents.ClientMetadata{RedirectURIs: []string{"http://127.0.0.1:8765/cb"}}, ok, ""},
		{"loopback http [::1]", agents.ClientMetadata{RedirectURIs: []string{"http://[::1]:8765/cb"}}, ok, ""},
		{"loopback http localhost", agents.ClientMetadata{RedirectURIs: []string{"http://localhost/cb"}}, ok, ""},
		{"native private-use scheme", agents.ClientMetadata{ApplicationType: "native", RedirectURIs: []string{"com.example.app:/cb"}}, ok, ""},
		{"all served grants", agents.ClientMetadata{GrantTypes: []string{agents.GrantClientCredentials, agents.GrantTokenExchange, agents.GrantCIBA}}, ok, ""},
		{"private_key_jwt with jwks", pkjwt(agents.ClientMetadata{JWKS: pub}), ok, ""},
		{"private_key_jwt with an RSA key", pkjwt(agents.ClientMetadata{JWKS: rsaJWKS(t, 2048)}), ok, ""},
		{"private_key_jwt with jwks_uri", pkjwt(agents.ClientMetadata{JWKSURI: "https://app.example/jwks.json"}), ok, ""},
		{"every text field", agents.ClientMetadata{ClientName: "Research Bot ✓", SoftwareID: "4NRB1-0XZABZI9E6-5SM3R", SoftwareVersion: "2.1",
			Scope: "tools.read tools.call", Contacts: []string{"ops@example.com"}, ClientURI: "https://app.example",
			LogoURI: "https://app.example/logo.png", TOSURI: "https://app.example/tos#s1", PolicyURI: "https://app.example/privacy"}, ok, ""},

		{"javascript redirect", agents.ClientMetadata{RedirectURIs: []string{"javascript:alert(1)"}}, redirect, "never allowed"},
		{"JavaScript redirect in capitals", agents.ClientMetadata{RedirectURIs: []string{"JavaScript:alert(1)"}}, redirect, "never allowed"},
		{"data redirect for a native app", agents.ClientMetadata{ApplicationType: "native", RedirectURIs: []string{"data:text/html,hi"}}, redirect, "never allowed"},
		{"file redirect", agents.ClientMetadata{RedirectURIs: []string{"file:///etc/passwd"}}, redirect, "never allowed"},
		{"fragment", agents.ClientMetadata{RedirectURIs: []string{"https://app.example/cb#frag"}}, redirect, "fragment"},
		{"empty fragment", agents.ClientMetadata{RedirectURIs: []string{"https://app.example/cb#"}}, redirect, "fragment"},
		{"relative", agents.ClientMetadata{RedirectURIs: []string{"/cb"}}, redirect, "absolute"},
		{"http on a public host", agents.ClientMetadata{RedirectURIs: []string{"http://app.example/cb"}}, redirect, "loopback"},
		{"http on a lookalike host", agents.ClientMetadata{RedirectURIs: []string{"http://127.0.0.1.evil.example/cb"}}, redirect, "loopback"},
		{"https without host", agents.ClientMetadata{RedirectURIs: []string{"https:/cb"}}, redirect, "host"},
		{"user info", agents.ClientMetadata{RedirectURIs: []string{"https://a:b@app.example/cb"}}, redirect, "user information"},
		{"private-use scheme for a web app", agents.ClientMetadata{RedirectURIs: []string{"com.example.app:/cb"}}, redirect, "native"},
		{"private-use scheme without a dot", agents.ClientMetadata{ApplicationType: "native", RedirectURIs: []string{"myapp:/cb"}}, redirect, "reverse domain"},
		{"space in redirect", agents.ClientMetadata{RedirectURIs: []string{"https://app.example/c b"}}, redirect, "printable"},
		{"empty redirect", agents.ClientMetadata{RedirectURIs: []string{""}}, redirect, ""},
		{"too many redirects", agents.ClientMetadata{RedirectURIs: make([]string, agents.MaxRedirectURIs+1)}, redirect, "more than"},

		{"authorization_code", agents.ClientMetadata{GrantTypes: []string{"authorization_code"}}, metadata, `"authorization_code"`},
		{"implicit", agents.ClientMetadata{GrantTypes: []string{"implicit"}}, metadata, `"implicit"`},
		{"refresh_token", agents.ClientMetadata{GrantTypes: []string{"client_credentials", "refresh_token"}}, metadata, `"refresh_token"`},
		{"password", agents.ClientMetadata{GrantTypes: []string{"password"}}, metadata, `"password"`},
		{"unknown grant", agents.ClientMetadata{GrantTypes: []string{"urn:x:grant"}}, metadata, `"urn:x:grant"`},
		{"repeated grant", agents.ClientMetadata{GrantTypes: []string{"client_credentials", "client_credentials"}}, metadata, "repeated"},
		{"response type code", agents.ClientMetadata{ResponseTypes: []string{"code"}}, metadata, "authorization_code"},
		{"response type token", agents.ClientMetadata{ResponseTypes: []string{"token"}}, metadata, "implicit"},
		{"response type id_token", agents.ClientMetadata{ResponseTypes: []string{"id_token"}}, metadata, "no response type"},
		{"auth method none", agents.ClientMetadata{TokenEndpointAuthMethod: "none"}, metadata, `"none"`},
		{"auth method client_secret_post", agents.ClientMetadata{TokenEndpointAuthMethod: "client_secret_post"}, metadata, "client_secret_post"},
		{"private_key_jwt without keys", pkjwt(agents.ClientMetadata{}), metadata, "jwks or jwks_uri"},
		{"jwks and jwks_uri", pkjwt(agents.ClientMetadata{JWKS: pub, JWKSURI: "https://app.example/jwks.json"}), metadata, "both"},
		{"jwks and jwks_uri with secret auth", agents.ClientMetadata{JWKS: pub, JWKSURI: "https://app.example/jwks.json"}, metadata, "both"},
		{"private key in jwks", pkjwt(agents.ClientMetadata{JWKS: priv}), metadata, `"d"`},
		{"symmetric key in jwks", pkjwt(agents.ClientMetadata{JWKS: json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}), metadata, `"k"`},
		{"jwks as a string", pkjwt(agents.ClientMetadata{JWKS: json.RawMessage(`"keys"`)}), metadata, "JWK Set"},
		{"jwks without keys", pkjwt(agents.ClientMetadata{JWKS: json.RawMessage(`{"keys":[]}`)}), metadata, "non-empty"},
		{"jwks with a broken key", pkjwt(agents.ClientMetadata{JWKS: json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`)}), metadata, "valid"},
		{"RSA key of 1024 bits", pkjwt(agents.ClientMetadata{JWKS: rsaJWKS(t, 1024)}), metadata, "2048 to 8192"},
		{"jwks_uri over http", pkjwt(agents.ClientMetadata{JWKSURI: "http://app.example/jwks.json"}), metadata, "https"},
		{"application_type desktop", agents.ClientMetadata{ApplicationType: "desktop"}, metadata, "application_type"},
		{"client_uri over http", agents.ClientMetadata{ClientURI: "http://app.example"}, metadata, "client_uri"},
		{"logo_uri relative", agents.ClientMetadata{LogoURI: "/logo.png"}, metadata, "logo_uri"},
		{"tos_uri javascript", agents.ClientMetadata{TOSURI: "javascript:alert(1)"}, metadata, "tos_uri"},
		{"policy_uri with user info", agents.ClientMetadata{PolicyURI: "https://u:p@app.example"}, metadata, "policy_uri"},
		{"client_name with a control character", agents.ClientMetadata{ClientName: "bot\x07"}, metadata, "client_name"},
		{"client_name with a bidi override", agents.ClientMetadata{ClientName: "bot\u202egnp.exe"}, metadata, "client_name"},
		{"client_name too long", agents.ClientMetadata{ClientName: long}, metadata, "client_name"},
		{"software_id with a newline", agents.ClientMetadata{SoftwareID: "a\nb"}, metadata, "software_id"},
		{"software_version invalid UTF-8", agents.ClientMetadata{SoftwareVersion: "\xff"}, metadata, "software_version"},
		{"scope with double space", agents.ClientMetadata{Scope: "a  b"}, metadata, "scope"},
		{"scope with a quote", agents.ClientMetadata{Scope: `a"b`}, metadata, "scope"},
		{"scope too long", agents.ClientMetadata{Scope: strings.Repeat("a", agents.MaxScopeLength+1)}, metadata, "scope"},
		{"empty contact", agents.ClientMetadata{Contacts: []string{""}}, metadata, "contacts[0]"},
		{"too many contacts", agents.ClientMetadata{Contacts: make([]string, agents.MaxContacts+1)}, metadata, "contacts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.code == ok {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			me, isMeta := errors.AsType[*agents.MetadataError](err)
			if !isMeta {
				t.Fatalf("Validate = %v, want a *MetadataError", err)
			}
			if me.Code != tc.code || !strings.Contains(me.Description, tc.in) {
				t.Errorf("Validate = %s: %s, want code %s mentioning %q", me.Code, me.Description, tc.code, tc.in)
			}
			if !errors.Is(err, agents.ErrInvalid) {
				t.Error("MetadataError is not ErrInvalid")
			}
		})
	}
}

func TestMetadataWithDefaults(t *testing.T) {
	got := agents.ClientMetadata{JWKS: json.RawMessage(" null ")}.WithDefaults()
	want := agents.ClientMetadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic", ApplicationType: "web"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults (-want +got):\n%s", diff)
	}
	// Values given stay as given.
	given := agents.ClientMetadata{GrantTypes: []string{agents.GrantCIBA}, TokenEndpointAuthMethod: "private_key_jwt", ApplicationType: "native"}
	if diff := cmp.Diff(given, given.WithDefaults()); diff != "" {
		t.Errorf("WithDefaults changed given values (-want +got):\n%s", diff)
	}
	// Encoded defaults carry no null, "" or {} and a redirect_uris list.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"redirect_uris":[],"token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],"application_type":"web"}` {
		t.Errorf("encoded defaults = %s", b)
	}
}

func TestPublicJWKS(t *testing.T) {
	// Member names are read as RFC 7517 spells them; a private member in
	// any letter case refuses the set; extensions and oddly cased members
	// are dropped from the stored form.
	const x, y = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
	got, err := agents.PublicJWKS(json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `","kid":"k1","":"","ext":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"` + x + `","y":"` + y + `"}]}`; string(got) != want {
		t.Errorf("PublicJWKS = %s\nwant %s", got, want)
	}
	for _, member := range []string{"D", "d", "Dp", "K"} {
		_, err := agents.PublicJWKS(json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `","` + member + `":"AAAA"}]}`))
		if me, ok := errors.AsType[*agents.MetadataError](err); !ok || !strings.Contains(me.Description, "private") {
			t.Errorf("member %q: %v, want a refusal naming private key material", member, err)
		}
	}
}
