# The decision is whatever JSON the request body holds.
package writ.authz

decision := input.parsed_body
