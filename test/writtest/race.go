//go:build race

package writtest

// raceEnabled builds the writ binary with the race detector when the tests
// themselves run with it.
const raceEnabled = true
