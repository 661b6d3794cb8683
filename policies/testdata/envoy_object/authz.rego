package envoy.authz

default allow := {"allowed": false, "http_status": 403, "body": "denied", "headers": {"x-deny-reason": "no token"}}

allow := {
	"allowed": true,
	"headers": {"x-user": "alice", "x-groups": ["eng", "ops"]},
	"response_headers_to_add": [{"x-trace": "t1"}, {"x-trace": "t2"}],
	"request_headers_to_remove": ["authorization"],
	"dynamic_metadata": {"user": "alice", "level": 3},
} if {
	input.attributes.request.http.method == "GET"
}
