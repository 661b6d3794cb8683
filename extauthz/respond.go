package extauthz

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/tokens"
)

// Causes label the decisions metric. They are a fixed set so the metric's
// cardinality stays bounded whatever policies say.
const (
	causeAllowed             = "allowed"
	causePolicyDeny          = "policy_deny"
	causeApproval            = "approval_required"
	causeNoCredential        = "no_credential"
	causeInvalidToken        = "invalid_token"
	causeInvalidRequest      = "invalid_request"
	causePolicy              = "policy_error"
	causeMint                = "mint_error"
	causeCredential          = "credential_error"
	causeEvidence            = "evidence_unavailable"
	causeMalformedCheck      = "malformed_check"
	causeInternal            = "internal_error"
	headerDecisionID         = "x-writ-decision-id"
	headerTxnToken           = "txn-token"
	headerProxyAuthorization = "proxy-authorization"
	headerWWWAuthenticate    = "www-authenticate"
)

// verdict is what Check answers: an allow with its header changes, or a
// denial with its status and body.
type verdict struct {
	allowed bool
	outcome string // evidence outcome
	cause   string // metric label
	status  int    // HTTP status (200 for an allow)
	reason  string

	// allow
	setHeaders      map[string]string
	removeHeaders   []string
	dynamicMetadata map[string]any

	// both
	responseHeaders map[string]string

	// deny
	errorCode string // the body's "error", e.g. access_denied
	challenge string // WWW-Authenticate for 401
	body      string // a policy's own body, served verbatim
	rpcError  *requestError
}

func fault(status int, cause, reason string) verdict {
	return verdict{outcome: "error", cause: cause, status: status, reason: reason, errorCode: "server_error"}
}

func refuse(err error) verdict {
	var re *requestError
	if errors.As(err, &re) {
		return verdict{outcome: "bad_request", cause: causeInvalidRequest, status: re.Status, reason: re.Message, errorCode: "invalid_request", rpcError: re}
	}
	return verdict{outcome: "bad_request", cause: causeMalformedCheck, status: 400, reason: "malformed check request", errorCode: "invalid_request"}
}

func challenge(resourceMetadata string, params ...string) string {
	if resourceMetadata != "" {
		params = append(params, "resource_metadata", resourceMetadata)
	}
	var b strings.Builder
	b.WriteString("Bearer")
	for i := 0; i+1 < len(params); i += 2 {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(params[i])
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(params[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}

func invalidToken(resourceMetadata, description string) verdict {
	return verdict{
		outcome: "unauthenticated", cause: causeInvalidToken, status: 401, reason: description, errorCode: "invalid_token",
		challenge: challenge(resourceMetadata, "error", "invalid_token", "error_description", description),
	}
}

func invalidRequest(resourceMetadata, description string) verdict {
	return verdict{
		outcome: "unauthenticated", cause: causeInvalidToken, status: 401, reason: description, errorCode: "invalid_request",
		challenge: challenge(resourceMetadata, "error", "invalid_request", "error_description", description),
	}
}

// resourceMetadata is the resource_metadata of a 401 challenge for the call
// d describes: its resource's own metadata URL when the route names a
// configured resource, else the global one.
func (s *Server) resourceMetadata(d *description) string {
	if d != nil && d.input != nil && d.input.Resource != nil {
		if u, ok := s.cfg.ResourceMetadataURLs[d.input.Resource.ID]; ok && u != "" {
			return u
		}
	}
	return s.cfg.ResourceMetadata
}

// policyDenial answers a decision with allow false. A caller with no
// verified identity is asked to authenticate (401, RFC 6750 §3.1: no error
// code when no credential was sent, RFC 9728 §5.1: resource_metadata says
// where to learn how); anyone else is refused (403).
func policyDenial(identity *policies.Identity, dec policies.Decision, resourceMetadata string) verdict {
	reason := dec.Reason
	if reason == "" {
		reason = "denied by policy"
	}
	v := verdict{outcome: "deny", cause: causePolicyDeny, status: 403, reason: reason, errorCode: "access_denied",
		responseHeaders: dec.ResponseHeaders, body: dec.Body}
	if identity == nil {
		v.outcome, v.cause, v.status, v.errorCode = "unauthenticated", causeNoCredential, 401, "invalid_token"
		v.challenge = challenge(resourceMetadata)
	}
	if dec.HTTPStatus >= 400 && dec.HTTPStatus <= 599 {
		v.status = dec.HTTPStatus
	}
	return v
}

// approvalRequired answers a decision that needs a human's approval. This
// writ has no approval service configured, so the call is refused.
func approvalRequired(dec policies.Decision) verdict {
	reason := dec.Reason
	if reason == "" {
		reason = "approval required"
	}
	return verdict{outcome: "deny", cause: causeApproval, status: 403, errorCode: "approval_required",
		reason: reason + "; no approval service is configured, so the call is refused"}
}

// allow builds the header changes for an allowed call: the writ token in,
// the agent's own credentials and x-writ-* headers out, the policy's
// headers applied.
func allow(d *description, dec policies.Decision, minted tokens.Minted, cred injection) verdict {
	set := make(map[string]string, len(dec.Headers)+3)
	for k, v := range dec.Headers {
		set[strings.ToLower(k)] = v
	}
	if minted.Token != "" {
		set[tokenHeader(minted.Profile)] = tokenValue(minted)
	}
	if cred.header != "" {
		set[cred.header] = cred.value.Reveal()
	}
	reason := dec.Reason
	if reason == "" {
		reason = "allowed by policy"
	}
	return verdict{allowed: true, outcome: "allow", cause: causeAllowed, status: 200, reason: reason,
		setHeaders: set, removeHeaders: removals(d.headers, dec.RemoveHeaders, set),
		responseHeaders: dec.ResponseHeaders, dynamicMetadata: dec.DynamicMetadata}
}

// tokenHeader is where a writ token of this profile goes upstream.
func tokenHeader(p tokens.Profile) string {
	if p == tokens.TxnToken {
		return headerTxnToken
	}
	return headerAuthorization
}

func tokenValue(m tokens.Minted) string {
	if m.Profile == tokens.TxnToken {
		return m.Token.Reveal()
	}
	return "Bearer " + m.Token.Reveal()
}

// removedCredentials are the agent's credentials (credentialHeaders), in
// the order they are removed from every allowed request: no token
// passthrough.
var removedCredentials = []string{headerAuthorization, headerTxnToken, headerProxyAuthorization}

// writHeaderPrefix starts the names of headers writ owns. An upstream
// trusts them as writ's, so the agent's own are never passed on.
const writHeaderPrefix = "x-writ-"

// removals lists the headers to remove from an allowed request, each once,
// in this order: the agent's credentials (authorization, txn-token,
// proxy-authorization); every header the agent sent whose name starts with
// x-writ-, sorted; then the decision's remove_headers, lower-cased. A
// header writ sets, x-writ-decision-id included, is never listed: Envoy
// removes after it sets. In HTTP mode the list is sent as
// x-envoy-auth-headers-to-remove.
func removals(headers map[string]string, decided []string, set map[string]string) []string {
	var agentWrit []string
	for name := range headers {
		if strings.HasPrefix(name, writHeaderPrefix) {
			agentWrit = append(agentWrit, name)
		}
	}
	slices.Sort(agentWrit)
	out := make([]string, 0, len(removedCredentials)+len(agentWrit)+len(decided))
	for _, h := range removedCredentials {
		if !setByWrit(set, h) {
			out = append(out, h)
		}
	}
	for _, h := range agentWrit {
		if !setByWrit(set, h) {
			out = append(out, h)
		}
	}
	fixed := len(out)
	for _, h := range decided {
		h = strings.ToLower(h)
		if setByWrit(set, h) || credentialHeaders[h] || slices.Contains(out[fixed:], h) {
			continue
		}
		if _, sent := headers[h]; sent && strings.HasPrefix(h, writHeaderPrefix) {
			continue // listed already
		}
		out = append(out, h)
	}
	return out
}

// setByWrit reports a header the allow sets: a decision or writ-token
// header, or the decision id respond adds.
func setByWrit(set map[string]string, h string) bool {
	_, ok := set[h]
	return ok || h == headerDecisionID
}

// respond turns a verdict into Envoy's CheckResponse.
func respond(decisionID string, v verdict) *authv3.CheckResponse {
	if v.allowed {
		headers := make([]*corev3.HeaderValueOption, 0, len(v.setHeaders)+1)
		headers = append(headers, overwrite(headerDecisionID, decisionID))
		for _, k := range sortedKeys(v.setHeaders) {
			if k == headerDecisionID {
				continue
			}
			headers = append(headers, overwrite(k, v.setHeaders[k]))
		}
		dm := dynamicMetadata(decisionID, v.dynamicMetadata)
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			DynamicMetadata: dm,
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:              headers,
				HeadersToRemove:      v.removeHeaders,
				ResponseHeadersToAdd: headerOptions(v.responseHeaders),
			}},
		}
	}

	headers := headerOptions(v.responseHeaders)
	headers = append(headers, overwrite(headerDecisionID, decisionID))
	if v.challenge != "" {
		headers = append(headers, overwrite(headerWWWAuthenticate, v.challenge))
	}
	body := v.body
	if body == "" {
		body = denialBody(decisionID, v)
		headers = append(headers, overwrite("content-type", "application/json"))
	}
	if v.status == 503 || v.status == 429 {
		headers = append(headers, overwrite("retry-after", "1"))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode(v.status)), Message: v.reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(v.status)},
			Headers: headers,
			Body:    body,
		}},
	}
}

// denialBody is the JSON the agent reads: {error, reason, decision_id}, or a
// JSON-RPC error response when the request was a JSON-RPC call writ refused.
func denialBody(decisionID string, v verdict) string {
	var doc any
	if re := v.rpcError; re != nil && re.Code != 0 {
		id := re.ID
		if len(id) == 0 {
			id = json.RawMessage("null")
		}
		doc = struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   any             `json:"error"`
		}{"2.0", id, struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    any    `json:"data"`
		}{re.Code, re.Message, map[string]string{"decision_id": decisionID}}}
	} else {
		doc = struct {
			Error      string `json:"error"`
			Reason     string `json:"reason"`
			DecisionID string `json:"decision_id"`
		}{v.errorCode, v.reason, decisionID}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return `{"error":"server_error","decision_id":"` + decisionID + `"}`
	}
	return string(b)
}

// dynamicMetadata is the decision's dynamic_metadata plus decision_id. The
// policy's part is JSON data (numbers as json.Number), which protojson
// turns into a Struct; what cannot be represented is dropped whole, never
// the decision id.
func dynamicMetadata(decisionID string, fromPolicy map[string]any) *structpb.Struct {
	id := structpb.NewStringValue(decisionID)
	if len(fromPolicy) == 0 {
		return &structpb.Struct{Fields: map[string]*structpb.Value{"decision_id": id}}
	}
	dm := &structpb.Struct{}
	if raw, err := json.Marshal(fromPolicy); err == nil {
		if err := protojson.Unmarshal(raw, dm); err != nil {
			dm = &structpb.Struct{}
		}
	}
	if dm.Fields == nil {
		dm.Fields = map[string]*structpb.Value{}
	}
	dm.Fields["decision_id"] = id
	return dm
}

func grpcCode(status int) codes.Code {
	switch status {
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return codes.InvalidArgument
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusInternalServerError:
		return codes.Internal
	}
	return codes.PermissionDenied
}

func overwrite(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func headerOptions(m map[string]string) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(m)+3)
	for _, k := range sortedKeys(m) {
		out = append(out, overwrite(strings.ToLower(k), m[k]))
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
