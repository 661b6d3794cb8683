//go:build !race

package writtest

const raceEnabled = false
