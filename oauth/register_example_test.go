package oauth_test

import (
	"errors"
	"fmt"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/oauth"
)

func ExampleDecodeClientMetadata() {
	m, err := oauth.DecodeClientMetadata([]byte(`{"client_name":"Research Bot","scope":"tools.read"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.ClientName, m.GrantTypes, m.TokenEndpointAuthMethod)

	_, err = oauth.DecodeClientMetadata([]byte(`{"redirect_uris":["javascript:alert(1)"]}`))
	if me, ok := errors.AsType[*agents.MetadataError](err); ok {
		fmt.Println(me.Code)
	}
	// Output:
	// Research Bot [client_credentials] client_secret_basic
	// invalid_redirect_uri
}
