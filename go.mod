module github.com/breachkit/breach

go 1.25.0

require (
	github.com/looplab/fsm v1.0.3
	golang.org/x/sync v0.22.0
)
