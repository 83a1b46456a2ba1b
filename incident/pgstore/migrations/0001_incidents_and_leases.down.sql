-- Drops every incident and lease.
DROP TABLE IF EXISTS leases;
DROP TABLE IF EXISTS incidents;
