package example

allow if input.user == "alice"
