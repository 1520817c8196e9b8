-- Sessions are now stored under SHA-256 of their id, and sign-ins under way live in the browser, not here.
-- Rows written before that are unreachable (no cookie hashes to their ids): everyone signs in again once.
-- Removing them at once frees the space instead of waiting for each to expire.
DELETE FROM sessions;
