// Package postgres is the home of the multi-replica PostgreSQL example:
// cmd/replica is a host process that runs an orchestrator on
// github.com/breachkit/breach/incident/pgstore, and the tests of this
// directory start several replicas on one database and kill one of them.
//
// See README.md for how to run them.
package postgres
