module github.com/breachkit/breach

go 1.25.0

require (
	github.com/looplab/fsm v1.0.3
	github.com/stretchr/testify v1.12.1
	golang.org/x/sync v0.22.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
