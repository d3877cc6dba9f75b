-- The sweep looks only at open mandates (requested, approved, active), oldest
-- first. Without this index the planner walked (created_at, id) over every
-- mandate ever made, ended ones included, so each sweep grew with the
-- history (docs/benchmarks.md, "Mandates and presence"). A partial index on
-- the open ones keeps the sweep as cheap as the number of open mandates. Its
-- columns never change, and a heartbeat changes only lease_until, so on
-- PostgreSQL heartbeats stay HOT updates.

-- +goose Up
CREATE INDEX mandates_open_idx ON mandates (created_at, id) WHERE state IN ('requested', 'approved', 'active');

-- +goose Down
DROP INDEX mandates_open_idx;
