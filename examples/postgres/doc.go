// Package postgres is the home of the PostgreSQL example: package pgstore
// is an incident.Store and incident.Leaser on PostgreSQL, and cmd/replica is
// a host process that runs an orchestrator on it. The tests of this
// directory start several replicas on one database and kill one of them.
//
// See README.md for how to run them.
package postgres
