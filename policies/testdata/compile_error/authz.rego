package writ.authz

decision := {"allow": true} if {
	x > 1
}
