
policysha256:0123456789abcdef>

authz.rego0package writ.authz

decision := {"allow": true}
"{"limits":{"max":3}}