package oauth

import "net/http"

// codeUnsupportedResponseType is RFC 6749 section 4.1.2.1's error for a
// response type the server does not support.
const codeUnsupportedResponseType = "unsupported_response_type"

// maxAuthorizeForm bounds a POSTed authorization request, in bytes.
const maxAuthorizeForm = 16 << 10

// HandleAuthorize is writ's authorization endpoint. writ supports no
// response type: agents obtain tokens at the token endpoint (client
// credentials, token exchange, CIBA), and the metadata says
// response_types_supported: []. The endpoint exists because MCP clients
// refuse metadata without an authorization_endpoint.
//
// Every request is answered 400 with a JSON error, unsupported_response_type
// (invalid_request when response_type is missing or repeated), and never
// with a redirect: the client and its redirect_uri are unverified, and
// RFC 6749 section 4.1.2.1 forbids redirecting to an unverified URI. No
// parameter is echoed back.
func HandleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxAuthorizeForm)
	}
	var values []string
	if err := r.ParseForm(); err == nil {
		values = r.Form["response_type"]
	}
	switch {
	case len(values) == 0 || values[0] == "":
		writeError(w, badRequest(codeInvalidRequest, "response_type is required; writ supports none: obtain tokens at the token endpoint"))
	case len(values) > 1:
		writeError(w, badRequest(codeInvalidRequest, "response_type is repeated"))
	default:
		writeError(w, badRequest(codeUnsupportedResponseType, "writ supports no response type at the authorization endpoint: obtain tokens at the token endpoint"))
	}
}
