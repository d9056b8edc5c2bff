//go:build race

package channel_test

// raceEnabled: the race detector slows each connection several times over.
const raceEnabled = true
