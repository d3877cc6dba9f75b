-- +goose Up
-- PruneSignInFailures deletes by age across every key.
CREATE INDEX sign_in_failures_failed_at_idx ON sign_in_failures (failed_at);

-- +goose Down
DROP INDEX sign_in_failures_failed_at_idx;
